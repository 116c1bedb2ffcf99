//! CO persistence: sea-orm repositories implementing the domain's `ControlStore` port, on SQLite
//! (the embedded default, a file in the data directory) or PostgreSQL (`DATABASE_URL`).

mod convert;
pub mod entity;
mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use store::SqlStore;
