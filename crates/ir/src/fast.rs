//! Hash maps and sets with a fast non-cryptographic hasher (FxHash), for the
//! hot internal tables keyed by [`Key`](crate::Key)s (already hashes) and node ids.

pub type FastMap<K, V> = std::collections::HashMap<K, V, rustc_hash::FxBuildHasher>;
pub type FastSet<K> = std::collections::HashSet<K, rustc_hash::FxBuildHasher>;
