//! The daily salts: random, secret, rotated at UTC midnight, kept two days (so a visit
//! survives midnight) and then deleted from storage.

use crate::clock::Clock;
use footfall_core::identify::visitor::Salt;
use footfall_store::{MetadataStore, StoreError};
use rand::RngCore;
use std::sync::{Mutex, RwLock};

struct Current {
    day: i64,
    today: Salt,
    yesterday: Option<Salt>,
}

pub struct Salts {
    current: RwLock<Option<Current>>,
    store: Mutex<Box<dyn MetadataStore>>,
}

fn decode(hex_salt: &str) -> Result<Salt, StoreError> {
    let bytes = hex::decode(hex_salt).map_err(|e| StoreError::Corrupt(format!("salt: {e}")))?;
    let arr: [u8; 16] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("salt length".into()))?;
    Ok(Salt(arr))
}

impl Salts {
    pub fn new(store: Box<dyn MetadataStore>) -> Self {
        Salts {
            current: RwLock::new(None),
            store: Mutex::new(store),
        }
    }

    /// Today's salt and yesterday's (if it still exists), rotating when the day changed.
    pub fn get(&self, clock: &dyn Clock) -> Result<(Salt, Option<Salt>), StoreError> {
        let day = clock.now().day_number();
        if let Ok(guard) = self.current.read() {
            if let Some(c) = guard.as_ref().filter(|c| c.day == day) {
                return Ok((c.today.clone(), c.yesterday.clone()));
            }
        }
        let rotate = || {
            let store = self.store.lock().unwrap_or_else(|p| p.into_inner());
            let mut b = [0u8; 16];
            rand::rng().fill_bytes(&mut b);
            store.rotate_salts(day, &hex::encode(b))
        };
        // Once a day this reaches the store; on a request's async worker, tell the runtime
        // so other requests move to another worker meanwhile.
        let (today, yesterday) = match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(rotate)?
            }
            _ => rotate()?,
        };
        let cur = Current {
            day,
            today: decode(&today)?,
            yesterday: yesterday.as_deref().map(decode).transpose()?,
        };
        let out = (cur.today.clone(), cur.yesterday.clone());
        if let Ok(mut guard) = self.current.write() {
            *guard = Some(cur);
        }
        Ok(out)
    }
}
