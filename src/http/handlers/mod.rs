//! Handlers: plain functions from a request to a reply. They parse and
//! validate input, call the storage layer and shape the reply; they hold no
//! SQL.

pub mod articles;
pub mod events;
pub mod ops;
pub mod pages;
pub mod users;
