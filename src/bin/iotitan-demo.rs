//! `iotitan-demo`: the whole pipeline on one machine (to be built).
fn main() {}
