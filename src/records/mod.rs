//! The read engine: everything that reads iotitan's records back from syslog, shared by every
//! reader of history alike — the window statistics of `iotitan-stats`, `query`'s export and
//! the HTTP read API ([`crate::history`]).
//!
//! - [`reader`]: one line → what it is for a window ([`Reader`]);
//! - [`decisions`]: what a reader decided about each topic, made once per topic;
//! - [`feed`]: the one adapter from a scan's lines to the records of a window ([`Feed`]);
//! - [`scan`]: the sources of a read, read on one thread or split across every core;
//! - [`shared`]: one scan for many reads, each line parsed once ([`Shared`]);
//! - [`csv`]: CSV fields for the exports.
//!
//! Where lines come from (files, rotation, seeking, the journal) and how a line is parsed are
//! [`crate::syslog`]'s business; what a record means (statistics, rows, aggregates) is the
//! reader's.

pub mod csv;
pub mod decisions;
pub mod feed;
pub mod reader;
pub mod scan;
pub mod shared;

pub use decisions::{Decided, Decisions};
pub use feed::{Feed, Records};
pub use reader::{RawSeen, Reader, Seen};
pub use shared::{AnyRecords, Shared};
