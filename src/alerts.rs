//! `iotitan-alerts`: range, hysteresis, hold and stale-sensor alerts (to be built).
