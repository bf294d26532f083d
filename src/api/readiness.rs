//! Whether the store is prepared (`store::prepare`). Until it is, which
//! on a large database from before the backlog tallies existed takes
//! minutes, the server listens but answers the exchange's and the
//! administrators' calls UNAVAILABLE: clients retry, and a probe sees a
//! live server that is not ready yet rather than a closed port (which an
//! orchestrator would restart, and the count with it).

use tokio::sync::watch;
use tonic::{Request, Status};

use super::ApiError;

/// Whether the server is ready for the exchange's and administrators'
/// calls; cheap to clone and to ask.
#[derive(Clone, Debug)]
pub struct Readiness(watch::Receiver<bool>);

/// Makes the server ready, once.
#[derive(Debug)]
pub struct MakeReady(watch::Sender<bool>);

impl Readiness {
    /// Not ready until `MakeReady::ready` is called.
    pub fn starting() -> (MakeReady, Readiness) {
        let (tx, rx) = watch::channel(false);
        (MakeReady(tx), Readiness(rx))
    }

    pub fn is_ready(&self) -> bool {
        *self.0.borrow()
    }

    /// Ok once ready; the error a call gets before.
    pub fn check(&self) -> Result<(), ApiError> {
        if self.is_ready() {
            Ok(())
        } else {
            Err(ApiError::Starting)
        }
    }
}

impl MakeReady {
    pub fn ready(self) {
        self.0.send_replace(true);
    }
}

/// Gates a gRPC service: every call is answered UNAVAILABLE until ready.
impl tonic::service::Interceptor for Readiness {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        self.check()?;
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_unavailable_until_ready() {
        let (make_ready, mut readiness) = Readiness::starting();
        let refused = tonic::service::Interceptor::call(&mut readiness, Request::new(()))
            .expect_err("refused while starting");
        assert_eq!(refused.code(), tonic::Code::Unavailable);
        let copy = readiness.clone();
        make_ready.ready();
        assert!(copy.is_ready());
        assert!(tonic::service::Interceptor::call(&mut readiness, Request::new(())).is_ok());
    }
}
