//! Syslog as our storage: [`sink`] writes records (with [`header`]s, through the system
//! calls of `sys`, or over [`relp`]); [`source`] reads them back (stats, query, the read API), and [`line`]
//! parses each line. [`system`] finds what `auto` means on this machine.

pub mod header;
pub mod line;
pub mod relp;
pub mod sink;
pub mod source;
mod sys;
pub mod system;
