//! Connections spread over the cores. Each core gets four runtimes with
//! one worker thread each (lanes), and each accepted connection lives its
//! whole life on the lane with the fewest open connections: its packets
//! never change threads (handing each packet between two threads cost a
//! download 15 % more CPU and 20 % more wall time, README, Performance),
//! while the connections of a household backing up at once decrypt on
//! every core. The listener, the users.toml watcher and housekeeping stay
//! on the caller's runtime.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::{Handle, Runtime};
use tokio::task::{AbortHandle, JoinSet};

/// Lanes per core. More lanes than cores, so a few busy connections share a
/// lane with few others and the kernel, not one lane's task queue, shares a
/// core between them: a login and small requests during eight uploads then
/// wait for a time slice, as they do with OpenSSH's process per connection,
/// not behind every packet of the uploads on their lane.
const LANES_PER_CORE: usize = 4;

/// The lanes connections run on.
pub(crate) struct Lanes {
    lanes: Vec<Lane>,
}

struct Lane {
    /// `Some` until dropped (taken to shut it down without blocking).
    runtime: Option<Runtime>,
    handle: Handle,
    /// Connections running on this lane now.
    open: Arc<AtomicUsize>,
}

impl Lanes {
    /// Starts `count` lanes (at least one), named `conn-0`, `conn-1`, ….
    pub(crate) fn start(count: usize) -> std::io::Result<Lanes> {
        let lanes = (0..count.max(1))
            .map(|k| {
                // Multi-thread with one worker, not current-thread: blocking
                // work in a connection (`block_in_place`) needs it.
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name(format!("conn-{k}"))
                    .enable_all()
                    .build()?;
                let handle = runtime.handle().clone();
                Ok(Lane { runtime: Some(runtime), handle, open: Arc::default() })
            })
            .collect::<std::io::Result<Vec<Lane>>>()?;
        Ok(Lanes { lanes })
    }

    /// `LANES_PER_CORE` lanes for each of the machine's cores.
    pub(crate) fn for_cores() -> std::io::Result<Lanes> {
        Lanes::start(std::thread::available_parallelism().map_or(1, usize::from) * LANES_PER_CORE)
    }

    /// How many lanes there are.
    pub(crate) fn len(&self) -> usize {
        self.lanes.len()
    }

    /// Connections open on each lane now.
    pub(crate) fn loads(&self) -> Vec<usize> {
        self.lanes.iter().map(|l| l.open.load(Ordering::Relaxed)).collect()
    }

    /// Runs `connection` in `tasks` on the least-loaded lane.
    pub(crate) fn spawn<F>(&self, tasks: &mut JoinSet<F::Output>, connection: F) -> AbortHandle
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let lane = &self.lanes[least_loaded(&self.loads())];
        let open = OpenCount::enter(&lane.open);
        tasks.spawn_on(
            async move {
                let _open = open;
                connection.await
            },
            &lane.handle,
        )
    }
}

impl Drop for Lanes {
    fn drop(&mut self) {
        // Dropping a runtime blocks until its tasks end, which is not
        // allowed inside the caller's runtime; the endpoint has drained its
        // connections by now, so nothing is left to wait for.
        for lane in &mut self.lanes {
            if let Some(runtime) = lane.runtime.take() {
                runtime.shutdown_background();
            }
        }
    }
}

/// The lane to use: the first of those with the fewest open connections.
pub(crate) fn least_loaded(loads: &[usize]) -> usize {
    loads.iter().enumerate().min_by_key(|&(k, &open)| (open, k)).map_or(0, |(k, _)| k)
}

/// One open connection on a lane, counted until dropped (the connection
/// ended, failed or was aborted).
struct OpenCount(Arc<AtomicUsize>);

impl OpenCount {
    fn enter(open: &Arc<AtomicUsize>) -> OpenCount {
        open.fetch_add(1, Ordering::Relaxed);
        OpenCount(Arc::clone(open))
    }
}

impl Drop for OpenCount {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_loaded_lane_is_picked_and_ties_go_to_the_first() {
        assert_eq!(least_loaded(&[0]), 0);
        assert_eq!(least_loaded(&[2, 1, 1]), 1);
        assert_eq!(least_loaded(&[0, 0, 0, 0]), 0);
        assert_eq!(least_loaded(&[3, 2, 5, 0]), 3);
        assert_eq!(least_loaded(&[]), 0);
    }

    #[test]
    fn connections_spread_over_the_lanes_and_leave_their_count_when_done() {
        let lanes = Lanes::start(2).unwrap();
        let main = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        main.block_on(async {
            let mut tasks = JoinSet::new();
            let (release, wait) = tokio::sync::watch::channel(false);
            let names: Vec<_> = (0..4)
                .map(|_| {
                    let mut wait = wait.clone();
                    lanes.spawn(&mut tasks, async move {
                        let name = std::thread::current().name().map(str::to_string);
                        let _ = wait.wait_for(|go| *go).await;
                        name
                    })
                })
                .collect();
            assert_eq!(names.len(), 4);
            assert_eq!(lanes.loads(), [2, 2]);
            release.send(true).unwrap();
            let mut seen = Vec::new();
            while let Some(done) = tasks.join_next().await {
                seen.push(done.unwrap().unwrap());
            }
            seen.sort();
            assert_eq!(seen, ["conn-0", "conn-0", "conn-1", "conn-1"]);
            assert_eq!(lanes.loads(), [0, 0]);
        });
    }
}
