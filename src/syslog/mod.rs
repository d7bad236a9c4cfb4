//! Syslog as our storage: [`sink`] writes records, the source side (stats) reads them back.

pub mod sink;
