//! Syslog as our storage: [`sink`] writes records, [`source`] reads them back (stats).

pub mod sink;
pub mod source;
