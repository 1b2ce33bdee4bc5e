//! The keyed chunk store with pins (holds by results and stages), and, under a
//! memory limit, spilling.
//!
//! Without a limit every chunk stays in memory. With one, whenever the bytes in
//! memory pass the limit the coldest chunks nobody is reading right now (least
//! recently put or read) are written to a temp folder — `.npy` for tensors,
//! Arrow IPC for frames, bincode for reduction partials — and read back on the
//! next [`Store::get`]. A file is deleted when its chunk is freed, and the
//! folder when the store is dropped.

use crate::data::ChunkData;
use crate::error::{ExecError, ExecResult};
use mars_ir::fast::FastMap as HashMap;
use mars_ir::Key;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug)]
enum Slot {
    Mem(Arc<ChunkData>),
    /// Spilled: the file, and the shape (read without reading the file back).
    Disk(PathBuf, Vec<usize>),
}

#[derive(Debug)]
struct Entry {
    slot: Slot,
    pins: usize,
    nbytes: usize,
    /// Last put or read; the smallest is the coldest.
    tick: u64,
    /// Being written to disk by some thread.
    spilling: bool,
}

#[derive(Debug, Default)]
struct Map {
    entries: HashMap<Key, Entry>,
    /// Bytes of the chunks in memory.
    mem: usize,
    tick: u64,
}

impl Map {
    fn touch(&mut self, key: &Key) {
        self.tick += 1;
        if let Some(e) = self.entries.get_mut(key) {
            e.tick = self.tick;
        }
    }
    fn remove(&mut self, key: &Key) {
        if let Some(e) = self.entries.remove(key) {
            match e.slot {
                Slot::Mem(_) => self.mem -= e.nbytes,
                Slot::Disk(p, _) => {
                    // best effort: the folder goes when the store does
                    let _ = std::fs::remove_file(p);
                }
            }
        }
    }
}

/// What the store has spilled so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpillStats {
    /// Chunks written to disk since the store was made.
    pub chunks_spilled: u64,
    /// Bytes (in memory terms) written to disk since the store was made.
    pub bytes_spilled: u64,
    /// Chunks read back from disk.
    pub chunks_restored: u64,
    /// Chunks on disk now.
    pub chunks_on_disk: usize,
}

/// What the driver needs of the chunks a backend holds: which are held and
/// their shapes, holds (pins) on them, reading and adding values, and the
/// memory limit. Locally the in-process [`Store`]; on a cluster, the
/// supervisor's view of chunk metadata held on workers.
pub trait ChunkStore: Send + Sync {
    /// Whether the chunk is held.
    fn contains(&self, key: &Key) -> bool;
    /// Which of `keys` are held, asked at once (the driver asks it of every
    /// chunk of a stage).
    fn contains_each(&self, keys: &mut dyn Iterator<Item = Key>) -> Vec<bool>;
    /// A held chunk's shape, without reading its value.
    fn shape(&self, key: &Key) -> Option<Vec<usize>>;
    /// Add a hold, so the chunk outlives the run that made it; false when
    /// the chunk is not held.
    fn pin(&self, key: &Key) -> bool;
    /// Drop a hold.
    fn unpin(&self, key: &Key);
    /// Free the chunk unless something holds it.
    fn discard(&self, key: &Key);
    /// A held chunk's value.
    fn get(&self, key: &Key) -> ExecResult<Option<Arc<ChunkData>>>;
    /// Add a chunk (a key already held keeps its value).
    fn put(&self, key: Key, data: Arc<ChunkData>) -> ExecResult<()>;
    /// The memory limit, if any.
    fn limit(&self) -> Option<usize>;
}

impl ChunkStore for Store {
    fn contains(&self, key: &Key) -> bool {
        Store::contains(self, key)
    }
    fn contains_each(&self, keys: &mut dyn Iterator<Item = Key>) -> Vec<bool> {
        Store::contains_each(self, keys)
    }
    fn shape(&self, key: &Key) -> Option<Vec<usize>> {
        Store::shape(self, key)
    }
    fn pin(&self, key: &Key) -> bool {
        Store::pin(self, key)
    }
    fn unpin(&self, key: &Key) {
        Store::unpin(self, key)
    }
    fn discard(&self, key: &Key) {
        Store::discard(self, key)
    }
    fn get(&self, key: &Key) -> ExecResult<Option<Arc<ChunkData>>> {
        Store::get(self, key)
    }
    fn put(&self, key: Key, data: Arc<ChunkData>) -> ExecResult<()> {
        Store::put(self, key, data)
    }
    fn limit(&self) -> Option<usize> {
        Store::limit(self)
    }
}

/// This machine's physical memory in bytes (Linux: `MemTotal` of
/// `/proc/meminfo`), or `None` where it cannot be read. Nothing one chunk
/// needs can be larger: a chunk announced bigger is refused before anything
/// is allocated for it.
pub fn physical_memory() -> Option<usize> {
    static MEMORY: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    *MEMORY.get_or_init(|| {
        let info = std::fs::read_to_string("/proc/meminfo").ok()?;
        let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
        let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
        kib.checked_mul(1024)
    })
}

#[derive(Debug, Default)]
pub struct Store {
    map: Mutex<Map>,
    limit: Option<usize>,
    dir: Mutex<Option<PathBuf>>,
    chunks_spilled: AtomicU64,
    bytes_spilled: AtomicU64,
    chunks_restored: AtomicU64,
    files: AtomicU64,
}

static STORES: AtomicU64 = AtomicU64::new(0);

impl Store {
    /// A store that keeps the bytes in memory under `limit` by spilling.
    pub fn with_limit(limit: Option<usize>) -> Store {
        let mut s = Store::default();
        s.limit = limit;
        s
    }

    pub fn limit(&self) -> Option<usize> {
        self.limit
    }

    fn lock(&self) -> MutexGuard<'_, Map> {
        // a poisoned lock only means a panicking thread held it; the map is intact
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Add a chunk (a key already present keeps its value). Errors when the
    /// chunk alone is bigger than the memory limit, or spilling fails.
    pub fn put(&self, key: Key, data: Arc<ChunkData>) -> ExecResult<()> {
        let nbytes = data.nbytes();
        if let Some(limit) = self.limit.filter(|&l| nbytes > l) {
            return Err(ExecError::Memory(format!(
                "chunk {} needs {} bytes, more than the memory limit of {limit} bytes; use smaller chunks",
                key.short(),
                nbytes
            )));
        }
        {
            let mut m = self.lock();
            m.tick += 1;
            let tick = m.tick;
            if m.entries.contains_key(&key) {
                return Ok(());
            }
            m.entries.insert(key, Entry { slot: Slot::Mem(data), pins: 0, nbytes, tick, spilling: false });
            m.mem += nbytes;
        }
        self.make_room()
    }

    /// Hold user data (see `Backend::put`): as [`Store::put`], except that
    /// data bigger than the memory limit is not refused but written to disk
    /// at once. (A chunk reading it then brings it back whole, so the limit
    /// can be passed by that one value while it is read.)
    pub fn hold(&self, key: Key, data: Arc<ChunkData>) -> ExecResult<()> {
        let nbytes = data.nbytes();
        if self.limit.is_none_or(|l| nbytes <= l) {
            return self.put(key, data);
        }
        if self.contains(&key) {
            return Ok(());
        }
        let path = self.spill_dir()?.join(format!("{}-{}", key, self.files.fetch_add(1, Ordering::Relaxed)));
        write_spilled(&path, &data)?;
        let shape = data.shape();
        let mut m = self.lock();
        m.tick += 1;
        let tick = m.tick;
        m.entries.insert(key, Entry { slot: Slot::Disk(path, shape), pins: 0, nbytes, tick, spilling: false });
        self.chunks_spilled.fetch_add(1, Ordering::Relaxed);
        self.bytes_spilled.fetch_add(nbytes as u64, Ordering::Relaxed);
        Ok(())
    }

    /// The chunk's value, read back from disk if it was spilled.
    pub fn get(&self, key: &Key) -> ExecResult<Option<Arc<ChunkData>>> {
        let mut path = {
            let mut m = self.lock();
            m.touch(key);
            match m.entries.get(key).map(|e| &e.slot) {
                None => return Ok(None),
                Some(Slot::Mem(d)) => return Ok(Some(d.clone())),
                Some(Slot::Disk(p, _)) => p.clone(),
            }
        };
        let data = loop {
            match read_spilled(&path) {
                Ok(d) => break Arc::new(d),
                // another reader may have restored it (deleting the file), and
                // it may even have been spilled again to a new file meanwhile
                Err(e) => match self.lock().entries.get(key).map(|e| &e.slot) {
                    Some(Slot::Mem(d)) => return Ok(Some(d.clone())),
                    None => return Ok(None),
                    Some(Slot::Disk(p, _)) if *p != path => path = p.clone(),
                    Some(Slot::Disk(..)) => return Err(e),
                },
            }
        };
        let data = {
            let mut m = self.lock();
            let Map { entries, mem, .. } = &mut *m;
            match entries.get_mut(key) {
                // released meanwhile: the caller still gets the value it asked for
                None => return Ok(Some(data)),
                Some(e) => match &e.slot {
                    Slot::Mem(d) => d.clone(),
                    Slot::Disk(p, _) => {
                        let _ = std::fs::remove_file(p);
                        e.slot = Slot::Mem(data.clone());
                        *mem += e.nbytes;
                        self.chunks_restored.fetch_add(1, Ordering::Relaxed);
                        data
                    }
                },
            }
        };
        self.make_room()?;
        Ok(Some(data))
    }

    /// The shape of a stored chunk, without reading it back.
    pub fn shape(&self, key: &Key) -> Option<Vec<usize>> {
        self.lock().entries.get(key).map(|e| match &e.slot {
            Slot::Mem(d) => d.shape(),
            Slot::Disk(_, shape) => shape.clone(),
        })
    }

    pub fn contains(&self, key: &Key) -> bool {
        self.lock().entries.contains_key(key)
    }

    /// Which of `keys` are held, asked under one lock (the driver asks it of
    /// every chunk of a stage).
    pub fn contains_each(&self, keys: impl Iterator<Item = Key>) -> Vec<bool> {
        let m = self.lock();
        keys.map(|k| m.entries.contains_key(&k)).collect()
    }

    /// Free an intermediate unless something pins it.
    pub fn discard(&self, key: &Key) {
        let mut m = self.lock();
        if m.entries.get(key).is_some_and(|e| e.pins == 0) {
            m.remove(key);
        }
    }

    pub fn pin(&self, key: &Key) -> bool {
        match self.lock().entries.get_mut(key) {
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
        if let Some(e) = m.entries.get_mut(key) {
            e.pins = e.pins.saturating_sub(1);
            if e.pins == 0 {
                m.remove(key);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of the chunks in memory (spilled ones not counted).
    pub fn bytes(&self) -> usize {
        self.lock().mem
    }

    pub fn spill_stats(&self) -> SpillStats {
        SpillStats {
            chunks_spilled: self.chunks_spilled.load(Ordering::Relaxed),
            bytes_spilled: self.bytes_spilled.load(Ordering::Relaxed),
            chunks_restored: self.chunks_restored.load(Ordering::Relaxed),
            chunks_on_disk: self.lock().entries.values().filter(|e| matches!(e.slot, Slot::Disk(..))).count(),
        }
    }

    pub fn clear(&self) {
        let mut m = self.lock();
        let keys: Vec<Key> = m.entries.keys().copied().collect();
        for k in keys {
            m.remove(&k);
        }
    }

    /// The spill folder, made on first use.
    fn spill_dir(&self) -> ExecResult<PathBuf> {
        let mut dir = self.dir.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = &*dir {
            return Ok(d.clone());
        }
        let n = STORES.fetch_add(1, Ordering::Relaxed);
        let d = std::env::temp_dir().join(format!("mars-spill-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&d)
            .map_err(|e| ExecError::Memory(format!("cannot make the spill folder {}: {e}", d.display())))?;
        *dir = Some(d.clone());
        Ok(d)
    }

    /// The spill folder, if one was made.
    pub fn spill_path(&self) -> Option<PathBuf> {
        self.dir.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Spill the coldest idle chunks until the bytes in memory are under the
    /// limit (or nothing idle is left: chunks being read stay).
    pub fn make_room(&self) -> ExecResult<()> {
        let Some(limit) = self.limit else { return Ok(()) };
        let victims: Vec<(Key, Arc<ChunkData>)> = {
            let mut m = self.lock();
            if m.mem <= limit {
                return Ok(());
            }
            let mut idle: Vec<(u64, Key, usize)> = m
                .entries
                .iter()
                .filter_map(|(k, e)| match &e.slot {
                    Slot::Mem(d) if !e.spilling && Arc::strong_count(d) == 1 => Some((e.tick, *k, e.nbytes)),
                    _ => None,
                })
                .collect();
            idle.sort_unstable_by_key(|v| v.0);
            let mut over = m.mem - limit;
            let mut out = Vec::new();
            for (_, k, n) in idle {
                if over == 0 {
                    break;
                }
                over = over.saturating_sub(n.max(1));
                if let Some(e) = m.entries.get_mut(&k) {
                    if let Slot::Mem(d) = &e.slot {
                        e.spilling = true;
                        out.push((k, d.clone()));
                    }
                }
            }
            out
        };
        if victims.is_empty() {
            return Ok(());
        }
        let dir = self.spill_dir()?;
        for (key, data) in victims {
            let path = dir.join(format!("{}-{}", key, self.files.fetch_add(1, Ordering::Relaxed)));
            let written = write_spilled(&path, &data);
            let mut m = self.lock();
            let Map { entries, mem, .. } = &mut *m;
            let Some(e) = entries.get_mut(&key) else {
                // freed while being written
                let _ = std::fs::remove_file(&path);
                continue;
            };
            e.spilling = false;
            if let Err(err) = written {
                let _ = std::fs::remove_file(&path);
                return Err(err);
            }
            e.slot = Slot::Disk(path, data.shape());
            *mem -= e.nbytes;
            self.chunks_spilled.fetch_add(1, Ordering::Relaxed);
            self.bytes_spilled.fetch_add(e.nbytes as u64, Ordering::Relaxed);
        }
        Ok(())
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Some(d) = self.dir.get_mut().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

fn write_spilled(path: &Path, data: &ChunkData) -> ExecResult<()> {
    let bytes = crate::codec::encode(data)?;
    std::fs::write(path, bytes).map_err(|e| ExecError::Memory(format!("cannot spill to {}: {e}", path.display())))
}

fn read_spilled(path: &Path) -> ExecResult<ChunkData> {
    let bytes = std::fs::read(path)
        .map_err(|e| ExecError::Memory(format!("cannot read spilled chunk {}: {e}", path.display())))?;
    crate::codec::decode(&bytes)
        .map_err(|e| ExecError::Memory(format!("spilled chunk {} is corrupt: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Partial;
    use mars_ir::TensorData;
    use ndarray::{ArrayD, IxDyn};

    fn tensor(v: f64, n: usize) -> Arc<ChunkData> {
        Arc::new(ChunkData::Tensor(TensorData::F64(ArrayD::from_elem(IxDyn(&[n]), v))))
    }

    fn key(i: u128) -> Key {
        Key(i)
    }

    #[test]
    fn spills_the_coldest_and_reads_back() {
        // room for two 800-byte chunks
        let s = Store::with_limit(Some(1700));
        for i in 0..5 {
            s.put(key(i), tensor(i as f64, 100)).unwrap();
            s.pin(&key(i));
        }
        assert!(s.bytes() <= 1700, "{} bytes in memory", s.bytes());
        let st = s.spill_stats();
        assert_eq!((st.chunks_spilled, st.chunks_on_disk), (3, 3));
        assert_eq!(st.bytes_spilled, 2400);
        // the oldest went first
        let dir = s.spill_path().unwrap();
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 3);
        for i in 0..5 {
            assert_eq!(*s.get(&key(i)).unwrap().unwrap(), *tensor(i as f64, 100));
            assert!(s.bytes() <= 1700);
        }
        assert!(s.spill_stats().chunks_restored >= 3);
        // freeing deletes the files, dropping the store the folder
        for i in 0..5 {
            s.unpin(&key(i));
        }
        assert!(s.is_empty());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        drop(s);
        assert!(!dir.exists());
    }

    #[test]
    fn chunks_being_read_are_not_spilled() {
        let s = Store::with_limit(Some(1000));
        s.put(key(1), tensor(1.0, 100)).unwrap();
        let reading = s.get(&key(1)).unwrap().unwrap();
        s.put(key(2), tensor(2.0, 100)).unwrap();
        // key 1 is in use, so key 2 (the only idle one) went to disk
        assert_eq!(s.spill_stats().chunks_on_disk, 1);
        assert!(matches!(s.lock().entries[&key(1)].slot, Slot::Mem(_)));
        drop(reading);
        assert_eq!(*s.get(&key(2)).unwrap().unwrap(), *tensor(2.0, 100));
    }

    #[test]
    fn concurrent_readers_of_a_spilled_chunk_all_get_it() {
        let n = 25_000; // 200 KB chunks: reads take long enough to overlap
        let s = Arc::new(Store::with_limit(Some(300_000)));
        for round in 0..30u128 {
            // key 2 pushes key 1 to disk, then eight threads read key 1 at once
            s.put(key(1000 + round), tensor(round as f64, n)).unwrap();
            s.put(key(2000 + round), tensor(-1.0, n)).unwrap();
            let readers: Vec<_> = (0..8)
                .map(|_| {
                    let s = s.clone();
                    std::thread::spawn(move || s.get(&key(1000 + round)).map(|d| d.map(|d| (*d).clone())))
                })
                .collect();
            for r in readers {
                let got = r.join().unwrap().unwrap().unwrap();
                assert_eq!(got, *tensor(round as f64, n));
            }
        }
    }

    #[test]
    fn partials_and_frames_round_trip() {
        let s = Store::with_limit(Some(1));
        let p = Arc::new(ChunkData::Partial {
            shape: vec![1, 2],
            state: Partial::Moments { count: vec![1.0, 2.0], mean: vec![0.5, 1.5], m2: vec![0.0, 0.25] },
        });
        let batch = arrow::record_batch::RecordBatch::try_from_iter([(
            "a",
            Arc::new(arrow::array::Int64Array::from(vec![1, 2, 3])) as arrow::array::ArrayRef,
        )])
        .unwrap();
        let f = Arc::new(ChunkData::Frame(batch));
        // both bigger than the limit of 1 byte
        assert!(matches!(s.put(key(1), p.clone()), Err(ExecError::Memory(_))));
        let s = Store::with_limit(Some(p.nbytes().max(f.nbytes())));
        // fresh Arcs: a chunk someone else holds is never spilled
        s.put(key(1), Arc::new((*p).clone())).unwrap();
        s.put(key(2), Arc::new((*f).clone())).unwrap();
        s.put(key(3), tensor(0.0, 1)).unwrap();
        assert_eq!(*s.get(&key(1)).unwrap().unwrap(), *p);
        assert_eq!(*s.get(&key(2)).unwrap().unwrap(), *f);
        assert!(s.spill_stats().chunks_spilled >= 2, "{:?} p={} f={}", s.spill_stats(), p.nbytes(), f.nbytes());
    }

    #[test]
    fn too_big_a_chunk_is_a_clear_error() {
        let s = Store::with_limit(Some(100));
        let e = s.put(key(7), tensor(0.0, 100)).unwrap_err().to_string();
        assert!(e.contains("needs 800 bytes, more than the memory limit of 100 bytes"), "{e}");
        assert!(s.is_empty());
    }
}
