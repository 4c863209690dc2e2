//! Data-parallel training: over several devices of one process ([`parallel`]) and over a
//! group of processes ([`collective`], on MPI with the `mpi` feature: [`mpi`](self)).

pub mod collective;
#[cfg(feature = "mpi")]
pub mod mpi;
pub mod parallel;
