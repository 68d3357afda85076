//! User agents repeat (a site sees a few thousand distinct ones a day), and classifying one
//! — bot markers, then woothee — costs more than the rest of enrichment together. A bounded
//! map remembers the answers; when full it starts over, which keeps memory fixed and costs
//! one re-parse per agent.

use footfall_core::enrich::ua;
use footfall_core::event::Client;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const MAX_ENTRIES: usize = 10_000;
/// Longer agents are classified every time rather than kept (they are rare, and keys that
/// large would make the cache's memory depend on hostile input).
const MAX_KEY_BYTES: usize = 512;

#[derive(Default)]
pub struct UaCache {
    map: Mutex<HashMap<Box<str>, Option<Arc<Client>>>>,
}

impl UaCache {
    /// None for a bot, else the client.
    pub fn classify(&self, agent: &str) -> Option<Arc<Client>> {
        if agent.len() > MAX_KEY_BYTES {
            return ua::classify(agent).map(Arc::new);
        }
        if let Some(hit) = self.lock().get(agent) {
            return hit.clone();
        }
        let answer = ua::classify(agent).map(Arc::new);
        let mut map = self.lock();
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(agent.into(), answer.clone());
        answer
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Option<Arc<Client>>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caches_the_same_answer_as_a_fresh_parse() {
        let c = UaCache::default();
        let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36";
        for agent in [
            chrome,
            "Googlebot/2.1 (+http://www.google.com/bot.html)",
            "",
            "curl/8.0",
        ] {
            let first = c.classify(agent).map(|a| (*a).clone());
            let again = c.classify(agent).map(|a| (*a).clone());
            assert_eq!(first, ua::classify(agent));
            assert_eq!(again, first);
        }
        assert!(c.classify(chrome).is_some());
        assert!(c
            .classify("Googlebot/2.1 (+http://www.google.com/bot.html)")
            .is_none());
        let long = format!("{chrome}{}", " x".repeat(400));
        assert_eq!(c.classify(&long).map(|a| (*a).clone()), ua::classify(&long));
        assert!(c.lock().len() <= 4, "overlong agents are not kept");
    }
}
