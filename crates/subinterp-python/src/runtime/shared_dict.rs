//! Shared dicts: concurrent mappings of the process that every interpreter opens by name
//! (`subinterp_rs.SharedDict`).
//!
//! A mapping holds keys and values as plain Rust data ([`Key`], [`Data`]), never a Python
//! object, so any interpreter reads and writes it and closing an interpreter loses nothing.
//! Its entries are spread over [`SHARDS`] mutexes by key hash: operations on different keys
//! from different threads rarely wait for each other. No lock here is held while a GIL is
//! waited for: the module functions convert their arguments first (under the caller's GIL,
//! which they keep: each operation is short and never blocks on another interpreter).

use std::collections::hash_map::{DefaultHasher, Entry};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, RwLock};

use crate::runtime::xi::Value;

/// Shards of one mapping (a power of two).
pub const SHARDS: usize = 32;

/// A key: `str`, `int` (64 bits; `bool` is stored as `int`, as `dict` treats `True` as `1`),
/// `bytes`, or a tuple of keys.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    /// `int`
    Int(i64),
    /// `str`
    Str(String),
    /// `bytes`
    Bytes(Vec<u8>),
    /// `tuple`
    Tuple(Vec<Key>),
}

/// A value: `None`, `bool`, `int`, `float`, `str`, `bytes`, or a tuple of values.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    /// `None`
    None,
    /// `bool`
    Bool(bool),
    /// `int` of 64 bits
    Int(i64),
    /// Any other `int`, as `hex(n)`.
    BigInt(String),
    /// `float`
    Float(f64),
    /// `str`
    Str(String),
    /// `bytes`
    Bytes(Vec<u8>),
    /// `tuple`
    Tuple(Vec<Data>),
    /// A container (`list`, `dict`, `set`, ... of data) in the encoding of
    /// [`crate::runtime::xi::data`], the one the executor's calls use; compared by encoding.
    Encoded(Vec<u8>),
}

/// What went wrong, for the module function to raise.
#[derive(Debug)]
pub enum MapError {
    /// The mapping was closed (its name).
    Closed(String),
    /// No open mapping has this id.
    NotFound(i64),
    /// A new key would exceed the bound (name, bound).
    Full(String, usize),
    /// `increment` on a value or with a delta that is not an `int` or `float`.
    NotANumber,
    /// An `int` sum of `increment` beyond 64 bits.
    Overflow,
}

impl Key {
    /// The key a crossed value names.
    ///
    /// # Errors
    /// The reason, for a type that cannot be a key.
    pub fn from_value(value: Value) -> Result<Key, String> {
        Ok(match value {
            Value::Int(n) => Key::Int(n),
            Value::Bool(b) => Key::Int(i64::from(b)),
            Value::Str(s) => Key::Str(s),
            Value::Bytes(b) => Key::Bytes(b),
            Value::BigBytes(shared) => Key::Bytes(shared.as_bytes().to_vec()),
            Value::Tuple(items) => Key::Tuple(
                items
                    .into_iter()
                    .map(Key::from_value)
                    .collect::<Result<_, _>>()?,
            ),
            Value::BigInt(_) => return Err("an int key must fit 64 bits".into()),
            other => return Err(format!("{} cannot be a key", kind(&other))),
        })
    }

    /// The key as a value to rebuild.
    #[must_use]
    pub fn to_value(&self) -> Value {
        match self {
            Key::Int(n) => Value::Int(*n),
            Key::Str(s) => Value::Str(s.clone()),
            Key::Bytes(b) => Value::Bytes(b.clone()),
            Key::Tuple(items) => Value::Tuple(items.iter().map(Key::to_value).collect()),
        }
    }

    fn shard(&self) -> usize {
        let mut h = DefaultHasher::new();
        self.hash(&mut h);
        // Truncation is fine: only the low bits pick the shard.
        #[allow(clippy::cast_possible_truncation)]
        let bits = h.finish() as usize;
        bits & (SHARDS - 1)
    }
}

impl Data {
    /// The data a crossed value holds.
    ///
    /// # Errors
    /// The reason, for a value that does not cross as data.
    pub fn from_value(value: Value) -> Result<Data, String> {
        Ok(match value {
            Value::None => Data::None,
            Value::Bool(b) => Data::Bool(b),
            Value::Int(n) => Data::Int(n),
            Value::BigInt(s) => Data::BigInt(s),
            Value::Float(x) => Data::Float(x),
            Value::Str(s) => Data::Str(s),
            Value::Bytes(b) => Data::Bytes(b),
            Value::BigBytes(shared) => Data::Bytes(shared.as_bytes().to_vec()),
            Value::Tuple(items) => Data::Tuple(
                items
                    .into_iter()
                    .map(Data::from_value)
                    .collect::<Result<_, _>>()?,
            ),
            Value::Data(encoded) => Data::Encoded(encoded),
            other => return Err(format!("{} cannot be stored", kind(&other))),
        })
    }

    /// The data as a value to rebuild.
    #[must_use]
    pub fn to_value(&self) -> Value {
        match self {
            Data::None => Value::None,
            Data::Bool(b) => Value::Bool(*b),
            Data::Int(n) => Value::Int(*n),
            Data::BigInt(s) => Value::BigInt(s.clone()),
            Data::Float(x) => Value::Float(*x),
            Data::Str(s) => Value::Str(s.clone()),
            Data::Bytes(b) => Value::Bytes(b.clone()),
            Data::Tuple(items) => Value::Tuple(items.iter().map(Data::to_value).collect()),
            Data::Encoded(encoded) => Value::Data(encoded.clone()),
        }
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Buffer(_) => "a memoryview",
        Value::Queue(_) => "a queue",
        _ => "a value that is not data",
    }
}

/// One mapping.
pub struct SharedMap {
    name: String,
    maxsize: usize,
    len: AtomicUsize,
    closed: AtomicBool,
    shards: Vec<Mutex<HashMap<Key, Data>>>,
}

impl SharedMap {
    fn shard(&self, key: &Key) -> MutexGuard<'_, HashMap<Key, Data>> {
        self.shards[key.shard()]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn check_open(&self) -> Result<(), MapError> {
        if self.closed.load(Ordering::Acquire) {
            Err(MapError::Closed(self.name.clone()))
        } else {
            Ok(())
        }
    }

    /// Counts one more key, or refuses it at the bound.
    fn reserve(&self) -> Result<(), MapError> {
        let before = self.len.fetch_add(1, Ordering::AcqRel);
        if self.maxsize > 0 && before >= self.maxsize {
            self.len.fetch_sub(1, Ordering::AcqRel);
            return Err(MapError::Full(self.name.clone(), self.maxsize));
        }
        Ok(())
    }

    fn insert(&self, shard: &mut HashMap<Key, Data>, key: Key, data: Data) -> Result<(), MapError> {
        match shard.entry(key) {
            Entry::Occupied(mut e) => {
                e.insert(data);
            }
            Entry::Vacant(e) => {
                self.reserve()?;
                e.insert(data);
            }
        }
        Ok(())
    }
}

struct Registry {
    by_name: HashMap<String, i64>,
    by_id: HashMap<i64, Arc<SharedMap>>,
}

fn registry() -> &'static RwLock<Registry> {
    static REGISTRY: OnceLock<RwLock<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        RwLock::new(Registry {
            by_name: HashMap::new(),
            by_id: HashMap::new(),
        })
    })
}

static NEXT_ID: AtomicI64 = AtomicI64::new(1);

/// Opens the mapping `name`, creating it (bounded to `maxsize` keys, 0: unbounded) if no open
/// one has that name; returns its id and its bound (the existing one's when it was open).
pub fn open(name: &str, maxsize: usize) -> (i64, usize) {
    let mut reg = registry().write().unwrap_or_else(PoisonError::into_inner);
    if let Some(id) = reg.by_name.get(name).copied() {
        return (id, reg.by_id[&id].maxsize);
    }
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let map = SharedMap {
        name: name.to_owned(),
        maxsize,
        len: AtomicUsize::new(0),
        closed: AtomicBool::new(false),
        shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
    };
    reg.by_name.insert(name.to_owned(), id);
    reg.by_id.insert(id, Arc::new(map));
    (id, maxsize)
}

/// Runs `f` with the open mapping `id`.
///
/// # Errors
/// [`MapError::NotFound`] if no open mapping has that id, [`MapError::Closed`] if it was
/// closed; else what `f` returns.
pub fn with_map<R>(
    id: i64,
    f: impl FnOnce(&SharedMap) -> Result<R, MapError>,
) -> Result<R, MapError> {
    // Each thread keeps the mappings it used: no shared lock or reference count is touched
    // on the way to a shard (two threads would otherwise fight over their cache lines).
    thread_local! {
        static SEEN: std::cell::RefCell<HashMap<i64, Arc<SharedMap>>> =
            std::cell::RefCell::new(HashMap::new());
    }
    SEEN.with(|seen| {
        let mut seen = seen.borrow_mut();
        let map = match seen.entry(id) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                let reg = registry().read().unwrap_or_else(PoisonError::into_inner);
                let map = reg.by_id.get(&id).cloned().ok_or(MapError::NotFound(id))?;
                e.insert(map)
            }
        };
        if map.closed.load(Ordering::Acquire) {
            let name = map.name.clone();
            seen.remove(&id);
            return Err(MapError::Closed(name));
        }
        f(map)
    })
}

/// Closes mapping `id` for every interpreter: its entries are dropped, its name is free.
///
/// # Errors
/// As [`with_map`].
pub fn close(id: i64) -> Result<(), MapError> {
    let map = {
        let mut reg = registry().write().unwrap_or_else(PoisonError::into_inner);
        let map = reg.by_id.get(&id).cloned().ok_or(MapError::NotFound(id))?;
        map.check_open()?;
        map.closed.store(true, Ordering::Release);
        reg.by_name.remove(&map.name);
        reg.by_id.remove(&id);
        map
    };
    for shard in &map.shards {
        shard.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }
    map.len.store(0, Ordering::Release);
    Ok(())
}

/// Whether mapping `id` is closed (or was never open).
pub fn is_closed(id: i64) -> bool {
    with_map(id, |_| Ok(())).is_err()
}

/// The value of `key`, if any.
///
/// # Errors
/// As [`with_map`].
pub fn get(id: i64, key: &Key) -> Result<Option<Data>, MapError> {
    with_map(id, |map| Ok(map.shard(key).get(key).cloned()))
}

/// Sets `key` to `data`.
///
/// # Errors
/// As [`with_map`]; [`MapError::Full`] for a new key at the bound.
pub fn set(id: i64, key: Key, data: Data) -> Result<(), MapError> {
    with_map(id, |map| {
        let mut shard = map.shard(&key);
        map.check_open()?;
        map.insert(&mut shard, key, data)
    })
}

/// Removes `key`; its value, if it had one.
///
/// # Errors
/// As [`with_map`].
pub fn pop(id: i64, key: &Key) -> Result<Option<Data>, MapError> {
    with_map(id, |map| {
        let removed = map.shard(key).remove(key);
        if removed.is_some() {
            map.len.fetch_sub(1, Ordering::AcqRel);
        }
        Ok(removed)
    })
}

/// The value of `key`, set to `data` first if it had none.
///
/// # Errors
/// As [`set`].
pub fn setdefault(id: i64, key: Key, data: Data) -> Result<Data, MapError> {
    with_map(id, |map| {
        let mut shard = map.shard(&key);
        map.check_open()?;
        if let Some(v) = shard.get(&key) {
            return Ok(v.clone());
        }
        map.reserve()?;
        shard.insert(key, data.clone());
        Ok(data)
    })
}

/// Sets `key` to `new` if its value is `expected` (`None`: if it has no value); whether it
/// did. Values compare as data: same type and value (`1 != 1.0 != True` here).
///
/// # Errors
/// As [`set`].
pub fn compare_and_set(
    id: i64,
    key: Key,
    expected: Option<&Data>,
    new: Data,
) -> Result<bool, MapError> {
    with_map(id, |map| {
        let mut shard = map.shard(&key);
        map.check_open()?;
        if shard.get(&key) != expected {
            return Ok(false);
        }
        map.insert(&mut shard, key, new)?;
        Ok(true)
    })
}

/// Adds `delta` to the number at `key` (`default` if it has none) and returns the sum.
///
/// # Errors
/// As [`set`]; [`MapError::NotANumber`] if the value or `delta` is not an `int` or `float`,
/// [`MapError::Overflow`] if an `int` sum does not fit 64 bits.
pub fn increment(id: i64, key: Key, delta: &Data, default: &Data) -> Result<Data, MapError> {
    with_map(id, |map| {
        let mut shard = map.shard(&key);
        map.check_open()?;
        let current = shard.get(&key).unwrap_or(default);
        #[allow(clippy::cast_precision_loss)]
        let sum = match (current, delta) {
            (Data::Int(a), Data::Int(b)) => Data::Int(a.checked_add(*b).ok_or(MapError::Overflow)?),
            (Data::Int(a), Data::Float(b)) => Data::Float(*a as f64 + b),
            (Data::Float(a), Data::Int(b)) => Data::Float(a + *b as f64),
            (Data::Float(a), Data::Float(b)) => Data::Float(a + b),
            _ => return Err(MapError::NotANumber),
        };
        map.insert(&mut shard, key, sum.clone())?;
        Ok(sum)
    })
}

/// How many keys it holds.
///
/// # Errors
/// As [`with_map`].
pub fn len(id: i64) -> Result<usize, MapError> {
    with_map(id, |map| Ok(map.len.load(Ordering::Acquire)))
}

/// Every key and value, shard by shard (each shard as it was at one moment).
///
/// # Errors
/// As [`with_map`].
pub fn items(id: i64) -> Result<Vec<(Key, Data)>, MapError> {
    with_map(id, |map| {
        let mut out = Vec::with_capacity(map.len.load(Ordering::Acquire));
        for shard in &map.shards {
            let shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            out.extend(shard.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        Ok(out)
    })
}

/// Removes every key.
///
/// # Errors
/// As [`with_map`].
pub fn clear(id: i64) -> Result<(), MapError> {
    with_map(id, |map| {
        for shard in &map.shards {
            let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            let n = shard.len();
            shard.clear();
            map.len.fetch_sub(n, Ordering::AcqRel);
        }
        Ok(())
    })
}
