//! `wasi:io` (streams and poll) for the sandbox, answered on the calling thread.
//!
//! wasmtime-wasi's synchronous bindings run every operation that may wait (dropping a stream,
//! `blocking-write-and-flush`, `poll`, ...) through `in_tokio`, which calls `block_on` on the
//! current tokio runtime: on a runtime worker thread that panics. So a plugin that printed a
//! line could only be called off the workers, and every validation on the async runtime paid
//! for `block_in_place` (the worker's core handed to another thread and back: 7.5 % of a
//! node's CPU under PUTs, BENCHMARKS.md) in case it printed.
//!
//! Every stream a plugin can reach is in memory: stdin is empty, stdout is discarded, stderr is
//! a bounded pipe (`sandbox.rs`), and the only pollables are theirs (clock timers trap, and
//! files and sockets cannot be opened). Each operation is therefore complete the first time it
//! is polled. This module polls it once, with a no-op waker, on the calling thread; one that is
//! not complete then would be waiting for something no plugin can have, and traps the call
//! instead of blocking a thread.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use wasmtime::component::{HasData, Resource, ResourceTable};
use wasmtime_wasi::p2::bindings::sync::io::{poll, streams};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, DynPollable, StreamError, StreamResult};
use wasmtime_wasi_io::bindings::wasi::io::poll as async_poll;
use wasmtime_wasi_io::bindings::wasi::io::streams::{
    HostInputStream as AsyncInput, HostOutputStream as AsyncOutput,
};

/// The sandbox's resource table, seen by the `wasi:io` imports.
pub struct SyncIo<'a>(pub &'a mut ResourceTable);

/// `HasData` for [`SyncIo`], to add the imports to a linker.
pub struct HasSyncIo;
impl HasData for HasSyncIo {
    type Data<'a> = SyncIo<'a>;
}

/// The output of `f`, which must be complete the first time it is polled (see the module doc).
fn at_once<T>(f: impl Future<Output = T>) -> Result<T, wasmtime::Error> {
    match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => Ok(v),
        Poll::Pending => Err(wasmtime::format_err!(
            "a wasi:io operation of the plugin would wait, and no plugin stream can make it ready"
        )),
    }
}

/// [`at_once`] for an operation that answers a stream result.
fn stream_at_once<T>(f: impl Future<Output = StreamResult<T>>) -> StreamResult<T> {
    at_once(f).map_err(StreamError::Trap)?
}

impl streams::Host for SyncIo<'_> {
    fn convert_stream_error(&mut self, err: StreamError) -> wasmtime::Result<streams::StreamError> {
        streams::Host::convert_stream_error(self.0, err)
    }
}

impl streams::HostOutputStream for SyncIo<'_> {
    fn drop(&mut self, stream: Resource<DynOutputStream>) -> wasmtime::Result<()> {
        at_once(AsyncOutput::drop(self.0, stream))?
    }

    fn check_write(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<u64> {
        AsyncOutput::check_write(self.0, stream)
    }

    fn write(&mut self, stream: Resource<DynOutputStream>, bytes: Vec<u8>) -> StreamResult<()> {
        AsyncOutput::write(self.0, stream, bytes)
    }

    fn blocking_write_and_flush(
        &mut self,
        stream: Resource<DynOutputStream>,
        bytes: Vec<u8>,
    ) -> StreamResult<()> {
        stream_at_once(AsyncOutput::blocking_write_and_flush(self.0, stream, bytes))
    }

    fn blocking_write_zeroes_and_flush(
        &mut self,
        stream: Resource<DynOutputStream>,
        len: u64,
    ) -> StreamResult<()> {
        stream_at_once(AsyncOutput::blocking_write_zeroes_and_flush(
            self.0, stream, len,
        ))
    }

    fn subscribe(
        &mut self,
        stream: Resource<DynOutputStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        AsyncOutput::subscribe(self.0, stream)
    }

    fn write_zeroes(&mut self, stream: Resource<DynOutputStream>, len: u64) -> StreamResult<()> {
        AsyncOutput::write_zeroes(self.0, stream, len)
    }

    fn flush(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<()> {
        AsyncOutput::flush(self.0, stream)
    }

    fn blocking_flush(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<()> {
        stream_at_once(AsyncOutput::blocking_flush(self.0, stream))
    }

    fn splice(
        &mut self,
        dst: Resource<DynOutputStream>,
        src: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        AsyncOutput::splice(self.0, dst, src, len)
    }

    fn blocking_splice(
        &mut self,
        dst: Resource<DynOutputStream>,
        src: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        stream_at_once(AsyncOutput::blocking_splice(self.0, dst, src, len))
    }
}

impl streams::HostInputStream for SyncIo<'_> {
    fn drop(&mut self, stream: Resource<DynInputStream>) -> wasmtime::Result<()> {
        at_once(AsyncInput::drop(self.0, stream))?
    }

    fn read(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<Vec<u8>> {
        AsyncInput::read(self.0, stream, len)
    }

    fn blocking_read(
        &mut self,
        stream: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<Vec<u8>> {
        stream_at_once(AsyncInput::blocking_read(self.0, stream, len))
    }

    fn skip(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        AsyncInput::skip(self.0, stream, len)
    }

    fn blocking_skip(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        stream_at_once(AsyncInput::blocking_skip(self.0, stream, len))
    }

    fn subscribe(
        &mut self,
        stream: Resource<DynInputStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        AsyncInput::subscribe(self.0, stream)
    }
}

impl poll::Host for SyncIo<'_> {
    fn poll(&mut self, pollables: Vec<Resource<DynPollable>>) -> wasmtime::Result<Vec<u32>> {
        at_once(async_poll::Host::poll(self.0, pollables))?
    }
}

impl poll::HostPollable for SyncIo<'_> {
    fn ready(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<bool> {
        at_once(async_poll::HostPollable::ready(self.0, pollable))?
    }

    fn block(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        at_once(async_poll::HostPollable::block(self.0, pollable))?
    }

    fn drop(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        async_poll::HostPollable::drop(self.0, pollable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operation_complete_when_first_polled_answers() {
        assert_eq!(at_once(async { 7 }).unwrap(), 7);
    }

    #[test]
    fn an_operation_that_would_wait_traps_instead_of_blocking() {
        let err = at_once(std::future::pending::<()>()).unwrap_err();
        assert!(err.to_string().contains("would wait"), "{err}");
        let err = stream_at_once(std::future::pending::<StreamResult<()>>()).unwrap_err();
        assert!(matches!(err, StreamError::Trap(_)), "{err}");
    }
}
