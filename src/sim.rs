//! `iotitan-sim`: a simulated sensor fleet (to be built).
