//! What a run leaves for people to read: plots ([`plot`]) and the metrics table ([`csv`]).

pub mod csv;
pub mod plot;
