//! loadgen against a real order and payment on 127.0.0.1, spawned in this process as their
//! own tests spawn them; the `loadgen` binary runs as a child process where the exit code is
//! what is proven.

mod helpers;
mod hostile;
mod live;
mod open;
mod runs;
