//! The memory a request's vectors live in: one block mapped from the OS per request, returned to the OS the
//! moment the block is dropped, whichever thread drops it.
//!
//! Why not a `Vec` per vector: the vectors are made on the worker's threads and freed much later on others
//! (Node's main thread, when the garbage collector finalises the `Float32Array`s). The allocator parks such
//! cross-thread frees in the heap of the thread that allocated them until that thread next allocates or
//! collects, so after a large job the worker's heap kept tens of megabytes that nothing used (issue 15: +17 MB
//! after 12,000 texts, 257 MB after a 100,000-text request, until `close()`). A mapping has no such owner:
//! unmapping gives the pages back at once. JavaScript gets one `ArrayBuffer` over the block and one
//! `Float32Array` view per text (no copy), so the block is freed when the last of them is collected.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};

/// Bytes of result blocks alive now, for one service: counted up when a block is mapped and down when it is
/// dropped, on whatever thread.
#[derive(Debug, Default)]
pub struct ResultLedger {
    held: AtomicU64,
}

impl ResultLedger {
    pub fn held_bytes(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }
}

/// One request's vectors, `count` of `dimensions` f32 values each, in text order.
pub struct Vectors {
    block: Option<Block>,
    dimensions: usize,
    count: usize,
}

/// An anonymous mapping (page-aligned, zero-filled by the OS), counted in its ledger while it lives.
struct Block {
    map: memmap2::MmapMut,
    ledger: Arc<ResultLedger>,
}

impl Drop for Block {
    fn drop(&mut self) {
        self.ledger.held.fetch_sub(self.map.len() as u64, Ordering::Relaxed);
    }
}

impl Vectors {
    /// Room for `count` vectors of `dimensions` values, all zero until `set`.
    pub fn new(count: usize, dimensions: usize, ledger: &Arc<ResultLedger>) -> Result<Self> {
        let bytes = count
            .checked_mul(dimensions)
            .and_then(|n| n.checked_mul(4))
            .ok_or_else(|| Error::invalid_input(format!("{count} vectors of {dimensions} values do not fit in memory")))?;
        let block = if bytes == 0 {
            None
        } else {
            let map = memmap2::MmapMut::map_anon(bytes).map_err(|e| {
                Error::internal(format!("cannot map {bytes} bytes for {count} result vectors: {e}"))
            })?;
            ledger.held.fetch_add(bytes as u64, Ordering::Relaxed);
            Some(Block { map, ledger: ledger.clone() })
        };
        Ok(Vectors { block, dimensions, count })
    }

    /// Vectors copied from `rows`, in a block counted by `ledger` (for tests and results made elsewhere).
    pub fn from_rows(rows: &[Vec<f32>], dimensions: usize, ledger: &Arc<ResultLedger>) -> Result<Self> {
        let mut vectors = Self::new(rows.len(), dimensions, ledger)?;
        for (i, row) in rows.iter().enumerate() {
            vectors.set(i, row);
        }
        Ok(vectors)
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn dimensions(&self) -> usize {
        self.dimensions
    }

    /// Bytes the block holds (0 when there are no values).
    pub fn bytes(&self) -> usize {
        self.block.as_ref().map_or(0, |b| b.map.len())
    }

    fn floats(&self) -> &[f32] {
        match &self.block {
            // SAFETY: the mapping is page-aligned (so aligned for f32), `count × dimensions × 4` bytes long,
            // and every bit pattern is a valid f32.
            Some(b) => unsafe { std::slice::from_raw_parts(b.map.as_ptr() as *const f32, b.map.len() / 4) },
            None => &[],
        }
    }

    fn floats_mut(&mut self) -> &mut [f32] {
        match &mut self.block {
            // SAFETY: as in `floats`, through the one mutable borrow of the mapping.
            Some(b) => unsafe { std::slice::from_raw_parts_mut(b.map.as_mut_ptr() as *mut f32, b.map.len() / 4) },
            None => &mut [],
        }
    }

    /// Writes vector `i`. Panics when `i` is out of range or `v` has the wrong length (a bug, not bad input).
    pub fn set(&mut self, i: usize, v: &[f32]) {
        assert!(i < self.count && v.len() == self.dimensions, "vector {i} of {} values into {} × {}", v.len(), self.count, self.dimensions);
        let d = self.dimensions;
        self.floats_mut()[i * d..(i + 1) * d].copy_from_slice(v);
    }

    pub fn get(&self, i: usize) -> &[f32] {
        let d = self.dimensions;
        &self.floats()[i * d..(i + 1) * d]
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[f32]> + '_ {
        (0..self.count).map(move |i| self.get(i))
    }

    /// Owned copies, one `Vec` per vector.
    pub fn to_vecs(&self) -> Vec<Vec<f32>> {
        self.iter().map(<[f32]>::to_vec).collect()
    }

    /// The block for handing to another owner (the JavaScript `ArrayBuffer`): its address and length in bytes,
    /// and a guard that unmaps it (and updates the ledger) when dropped. `None` when there are no values.
    pub fn into_raw(mut self) -> Option<(*mut u8, usize, impl Send + 'static)> {
        self.block.take().map(|mut b| (b.map.as_mut_ptr(), b.map.len(), b))
    }
}

impl std::ops::Index<usize> for Vectors {
    type Output = [f32];

    fn index(&self, i: usize) -> &[f32] {
        self.get(i)
    }
}

impl<'a> IntoIterator for &'a Vectors {
    type Item = &'a [f32];
    type IntoIter = Box<dyn ExactSizeIterator<Item = &'a [f32]> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

impl Clone for Vectors {
    fn clone(&self) -> Self {
        let ledger = self.block.as_ref().map_or_else(Default::default, |b| b.ledger.clone());
        let mut copy = Vectors::new(self.count, self.dimensions, &ledger).expect("mapping a copy of results");
        copy.floats_mut().copy_from_slice(self.floats());
        copy
    }
}

impl PartialEq for Vectors {
    fn eq(&self, other: &Self) -> bool {
        self.count == other.count && self.dimensions == other.dimensions && self.floats() == other.floats()
    }
}

impl std::fmt::Debug for Vectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ledger_counts_blocks_until_their_last_owner_drops_them() {
        let ledger = Arc::new(ResultLedger::default());
        let mut v = Vectors::new(3, 4, &ledger).unwrap();
        assert_eq!(ledger.held_bytes(), 48);
        v.set(1, &[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(v.get(0), [0.0; 4], "fresh pages are zero");
        assert_eq!(&v[1], [1.0, 2.0, 3.0, 4.0]);
        assert_eq!(v.iter().count(), 3);
        let copy = v.clone();
        assert_eq!(ledger.held_bytes(), 96);
        assert_eq!(copy, v);
        drop(v);
        assert_eq!(ledger.held_bytes(), 48);
        let (ptr, len, guard) = copy.into_raw().unwrap();
        assert_eq!(len, 48);
        // SAFETY: the guard keeps the mapping alive; vector 1 starts 16 bytes in.
        assert_eq!(unsafe { *(ptr.add(16) as *const f32) }, 1.0);
        // Dropped on another thread, as the garbage collector's finaliser would.
        std::thread::spawn(move || drop(guard)).join().unwrap();
        assert_eq!(ledger.held_bytes(), 0);
    }

    #[test]
    fn empty_results_map_nothing_and_sizes_that_overflow_are_refused() {
        let ledger = Arc::new(ResultLedger::default());
        let none = Vectors::new(0, 384, &ledger).unwrap();
        assert!(none.is_empty() && none.bytes() == 0 && none.into_raw().is_none());
        assert_eq!(ledger.held_bytes(), 0);
        assert!(Vectors::new(usize::MAX / 2, 384, &ledger).is_err());
    }
}
