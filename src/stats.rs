//! `iotitan-stats`: statistics of syslog windows (to be built).
