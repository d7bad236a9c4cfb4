//! What a reader of history decided about each topic, looked up by the topic's bytes as
//! they stand in the line.
//!
//! Every reader (the statistics, `query`'s export, the read API) decides per topic whether
//! it is wanted, whether its payload is a plain number and where its values go. Matching
//! the filters and checking the topic's UTF-8 on every line was most of a read's per-line
//! cost, and topics repeat endlessly, so each decision is made once: the line's bytes are
//! looked up without a copy, in a hash keyed per process (a hostile log cannot choose
//! colliding topics) that is several times faster than SipHash on short keys.

use std::collections::HashMap;

/// The hash of the topic and series maps.
pub(crate) type FastHash = ahash::RandomState;

/// Most topics whose decisions a reader remembers: a flood of distinct topics (a broken or
/// hostile publisher) only makes their lines slower, not memory grow.
pub const CAPACITY: usize = 1 << 16;

/// Decisions of type `D`, one per topic seen, in the order first seen.
#[derive(Debug, Clone)]
pub struct Decisions<D> {
    /// Topic bytes (as in the line) → index into `decided`.
    index: HashMap<Box<[u8]>, usize, FastHash>,
    decided: Vec<D>,
    capacity: usize,
}

/// A decision looked up by [`Decisions::decide`].
#[derive(Debug)]
pub enum Decided<'d, D> {
    /// Made before, at this index.
    Known(usize, &'d D),
    /// Made now and kept at this index: the first line of its topic.
    New(usize, &'d D),
    /// Made now and not kept: the cache is full.
    Once(D),
}

impl<D> Decided<'_, D> {
    /// The decision.
    pub fn get(&self) -> &D {
        match self {
            Decided::Known(_, d) | Decided::New(_, d) => d,
            Decided::Once(d) => d,
        }
    }
}

impl<D> Default for Decisions<D> {
    fn default() -> Self {
        Decisions::with_capacity(CAPACITY)
    }
}

impl<D> Decisions<D> {
    /// An empty cache that keeps at most `capacity` decisions.
    pub fn with_capacity(capacity: usize) -> Self {
        Decisions {
            index: HashMap::default(),
            decided: Vec::new(),
            capacity,
        }
    }

    /// The decision about `topic`, made by `decide` the first time it is seen (and every
    /// time once the cache is full).
    pub fn decide(&mut self, topic: &[u8], decide: impl FnOnce(&[u8]) -> D) -> Decided<'_, D> {
        if let Some(&i) = self.index.get(topic) {
            return Decided::Known(i, &self.decided[i]);
        }
        let d = decide(topic);
        if self.decided.len() >= self.capacity {
            return Decided::Once(d);
        }
        let i = self.decided.len();
        self.index.insert(topic.into(), i);
        self.decided.push(d);
        Decided::New(i, &self.decided[i])
    }
}

/// The decision kept at an index from [`Decided`].
impl<D> std::ops::Index<usize> for Decisions<D> {
    type Output = D;
    fn index(&self, i: usize) -> &D {
        &self.decided[i]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_topic_is_decided_once_until_the_cache_is_full() {
        let mut d = Decisions::with_capacity(2);
        let mut calls = 0;
        let mut decide = |t: &[u8]| {
            calls += 1;
            t.len()
        };
        assert!(matches!(d.decide(b"a/b", &mut decide), Decided::New(0, 3)));
        assert!(matches!(
            d.decide(b"a/b", &mut decide),
            Decided::Known(0, 3)
        ));
        assert!(matches!(d.decide(b"c", &mut decide), Decided::New(1, 1)));
        // Full: a third topic is decided on each of its lines, and not kept.
        assert!(matches!(d.decide(b"dddd", &mut decide), Decided::Once(4)));
        assert!(matches!(d.decide(b"dddd", &mut decide), Decided::Once(4)));
        assert!(matches!(d.decide(b"c", &mut decide), Decided::Known(1, 1)));
        assert_eq!(calls, 4);
        assert_eq!(d[1], 1);
    }
}
