//! Writing records to a syslog daemon.
