//! Syslog as our storage: [`sink`] writes records (with [`header`]s, through [`sys`]'s calls),
//! [`source`] reads them back (stats, query, the read API).

pub mod header;
pub mod sink;
pub mod source;
mod sys;
