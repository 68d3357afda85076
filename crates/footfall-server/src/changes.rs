//! A hook the metadata caches (sites, keys, accounts) call after they changed the store,
//! so that in cluster mode the other nodes reload theirs at once. Unset in embedded mode.

use std::sync::{Arc, OnceLock};

#[derive(Default)]
pub struct OnChange(OnceLock<Arc<dyn Fn() + Send + Sync>>);

impl OnChange {
    /// Sets the hook (once; later calls are ignored).
    pub fn set(&self, f: Arc<dyn Fn() + Send + Sync>) {
        let _ = self.0.set(f);
    }

    /// Tells the hook, if any, that this cache changed the store.
    pub fn fire(&self) {
        if let Some(f) = self.0.get() {
            f();
        }
    }
}
