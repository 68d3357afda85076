//! The write side after enrich: identify → live state → buffer → store, run by one writer
//! thread, plus the shared live state, the change feed, site registry and salts.

pub mod live;
pub mod salts;
pub mod sites;
pub mod writer;
