//! Shared strings. Visits and active visitors repeat the same few paths, countries,
//! browsers and referrers many thousands of times; holding each once keeps per-visitor
//! memory to ids and pointers.

use std::collections::HashSet;
use std::sync::Arc;

#[derive(Debug, Default)]
pub struct Interner {
    set: HashSet<Arc<str>>,
}

impl Interner {
    /// The shared copy of `s`.
    pub fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.set.get(s) {
            return a.clone();
        }
        let a: Arc<str> = s.into();
        self.set.insert(a.clone());
        a
    }

    /// Forgets strings nothing else holds any more (call now and then, e.g. when evicting).
    pub fn purge(&mut self) {
        self.set.retain(|a| Arc::strong_count(a) > 1);
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_and_purges() {
        let mut i = Interner::default();
        let a = i.get("/blog");
        let b = i.get("/blog");
        assert!(Arc::ptr_eq(&a, &b));
        let c = i.get("/about");
        drop(c);
        i.purge();
        assert_eq!(i.len(), 1, "only /blog is still held");
        drop((a, b));
        i.purge();
        assert!(i.is_empty());
    }
}
