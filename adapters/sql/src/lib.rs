//! CO persistence: sea-orm repositories implementing the domain's `ControlStore` port, on SQLite
//! (the embedded default, a file in the data directory).

mod convert;
pub mod entity;
mod store;

pub use store::SqlStore;
