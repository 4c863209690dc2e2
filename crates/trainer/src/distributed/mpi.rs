//! [`Collective`] on MPI (cargo feature `mpi`): the processes that `mpirun`/`mpiexec` started,
//! on one machine or several (a hostfile), summing with `MPI_Allreduce`.
//!
//! MPI's default error handler stays in place: a failed MPI call ends the whole job rather than
//! returning to a process whose peers wait for it. When one process ends with an error, the
//! caller prints it and calls [`Mpi::abort`], which ends the other processes too (Open MPI's
//! launcher also ends the job when a process dies without finishing MPI, e.g. when killed).

use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator, CommunicatorCollectives};

use crate::distributed::collective::Collective;
use crate::error::{Result, TrainError};

/// This process's place among the processes of an MPI job; MPI ends when it is dropped.
pub struct Mpi {
    world: SimpleCommunicator,
    // Dropped last: finalises MPI.
    _universe: Universe,
}

impl Mpi {
    /// Starts MPI in this process (once per process). A process started without a launcher is
    /// a job of one.
    pub fn init() -> Result<Self> {
        let universe = mpi::initialize()
            .ok_or_else(|| TrainError::Distributed("MPI was already started in this process".into()))?;
        Ok(Self {
            world: universe.world(),
            _universe: universe,
        })
    }

    /// Ends every process of the job with `code` (`MPI_Abort`).
    pub fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }
}

impl Collective for Mpi {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    fn size(&self) -> usize {
        self.world.size() as usize
    }

    fn sum(&self, values: &mut [f32]) {
        let send = values.to_vec();
        self.world.all_reduce_into(&send[..], values, SystemOperation::sum());
    }

    fn sum_f64(&self, values: &mut [f64]) {
        let send = values.to_vec();
        self.world.all_reduce_into(&send[..], values, SystemOperation::sum());
    }
}
