//! The keyed in-memory chunk store with pins (holds by results and stages).

use crate::data::ChunkData;
use mars_ir::Key;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug)]
struct Entry {
    data: Arc<ChunkData>,
    pins: usize,
}

#[derive(Debug, Default)]
pub struct Store {
    inner: Mutex<HashMap<Key, Entry>>,
}

impl Store {
    fn lock(&self) -> MutexGuard<'_, HashMap<Key, Entry>> {
        // a poisoned lock only means a panicking thread held it; the map is intact
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
    pub fn put(&self, key: Key, data: Arc<ChunkData>) {
        self.lock().entry(key).or_insert(Entry { data, pins: 0 });
    }
    pub fn get(&self, key: &Key) -> Option<Arc<ChunkData>> {
        self.lock().get(key).map(|e| e.data.clone())
    }
    pub fn contains(&self, key: &Key) -> bool {
        self.lock().contains_key(key)
    }
    /// Free an intermediate unless something pins it.
    pub fn discard(&self, key: &Key) {
        let mut m = self.lock();
        if m.get(key).is_some_and(|e| e.pins == 0) {
            m.remove(key);
        }
    }
    pub fn pin(&self, key: &Key) -> bool {
        match self.lock().get_mut(key) {
            Some(e) => {
                e.pins += 1;
                true
            }
            None => false,
        }
    }
    /// Drop one pin; the chunk is freed when none is left.
    pub fn unpin(&self, key: &Key) {
        let mut m = self.lock();
        if let Some(e) = m.get_mut(key) {
            e.pins = e.pins.saturating_sub(1);
            if e.pins == 0 {
                m.remove(key);
            }
        }
    }
    pub fn len(&self) -> usize {
        self.lock().len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn bytes(&self) -> usize {
        self.lock().values().map(|e| e.data.nbytes()).sum()
    }
    pub fn clear(&self) {
        self.lock().clear();
    }
}
