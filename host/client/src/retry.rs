//! When a failed attempt may be repeated on the next endpoint: only when its outcome is
//! certain (nothing happened), or when repeating it cannot apply a change twice.

use std::time::Duration;

use scarab_types::ErrorCode;

use crate::Error;

/// What a call may do again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Idempotency {
    /// About one node (`health`, `readyz`, `status`, `cluster/self`): another node's answer
    /// is another answer. Moves on only when the request was never sent.
    NodeScoped,
    /// Changes nothing (reads, validation, dry runs): repeated on any failure whose retry can
    /// help, an unknown outcome included.
    Read,
    /// A change. `retry_unknown`: the caller made it conditional (If-Match, If-None-Match,
    /// transaction conditions) and opted in, so that a repeat of an applied change fails
    /// its condition instead of applying twice.
    Write { retry_unknown: bool },
}

/// How an attempt failed, for the decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure<'a> {
    /// The request never left (the connection could not be made).
    NotSent,
    /// It may have reached the server; no answer came.
    NoAnswer,
    /// The server answered with this code.
    Api(&'a ErrorCode),
    /// Anything else (a body that does not decode, a bad argument): never retried.
    Other,
}

impl<'a> Failure<'a> {
    pub fn of(e: &'a Error) -> Self {
        match e {
            Error::Transport {
                maybe_sent: false, ..
            } => Failure::NotSent,
            Error::Transport {
                maybe_sent: true, ..
            } => Failure::NoAnswer,
            Error::Api(e) => Failure::Api(&e.code),
            _ => Failure::Other,
        }
    }
}

/// Whether the call may be sent again (to the next endpoint).
pub(crate) fn may_retry(failure: Failure<'_>, call: Idempotency) -> bool {
    match (failure, call) {
        (Failure::Other, _) => false,
        // Nothing happened, whatever the call.
        (Failure::NotSent, _) => true,
        (_, Idempotency::NodeScoped) => false,
        (Failure::NoAnswer, Idempotency::Read) => true,
        (Failure::NoAnswer, Idempotency::Write { retry_unknown }) => retry_unknown,
        (Failure::Api(code), Idempotency::Read) => {
            code.is_retry_safe() || code.is_outcome_unknown()
        }
        (Failure::Api(code), Idempotency::Write { retry_unknown }) => {
            // `not_ready` is retry-safe for reads. For a change the server answers `timeout`
            // when the outcome is unknown, but a membership change that fails inside
            // consensus is still `not_ready`, and a server of an earlier version answered it
            // for interrupted writes too: a write treats it as an unknown outcome.
            let unknown = code.is_outcome_unknown() || *code == ErrorCode::NotReady;
            (code.is_retry_safe() && !unknown) || (retry_unknown && unknown)
        }
    }
}

/// How many attempts a call makes, and the pause after each round of the endpoints.
#[derive(Clone, Debug)]
pub(crate) struct RetryPolicy {
    /// `None`: three rounds of the endpoints.
    pub max_attempts: Option<usize>,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: None,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    pub fn attempts(&self, endpoints: usize) -> usize {
        self.max_attempts.unwrap_or(3 * endpoints).max(1)
    }

    /// The pause before round `round` (from 1): doubling from the initial backoff.
    pub fn backoff(&self, round: usize) -> Duration {
        let factor = 1u32 << round.saturating_sub(1).min(16);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Idempotency::*;

    const WRITE: Idempotency = Write {
        retry_unknown: false,
    };
    const CONDITIONAL: Idempotency = Write {
        retry_unknown: true,
    };

    fn api(code: &ErrorCode) -> Failure<'_> {
        Failure::Api(code)
    }

    #[test]
    fn nothing_sent_is_always_retried() {
        for call in [NodeScoped, Read, WRITE, CONDITIONAL] {
            assert!(may_retry(Failure::NotSent, call), "{call:?}");
            assert!(!may_retry(Failure::Other, call), "{call:?}");
        }
    }

    #[test]
    fn no_leader_and_full_queues_move_on_for_every_change() {
        for code in [
            ErrorCode::NoLeader,
            ErrorCode::Overloaded,
            ErrorCode::TooManyConnections,
        ] {
            assert!(may_retry(api(&code), Read), "{code}");
            assert!(may_retry(api(&code), WRITE), "{code}");
            assert!(!may_retry(api(&code), NodeScoped), "{code}");
        }
    }

    #[test]
    fn an_unknown_outcome_is_retried_only_for_reads_and_conditional_opt_ins() {
        for code in [
            ErrorCode::Timeout,
            ErrorCode::LeaderUnreachable,
            ErrorCode::NotReady,
        ] {
            assert!(may_retry(api(&code), Read), "{code}");
            assert!(!may_retry(api(&code), WRITE), "{code}");
            assert!(may_retry(api(&code), CONDITIONAL), "{code}");
        }
        assert!(may_retry(Failure::NoAnswer, Read));
        assert!(!may_retry(Failure::NoAnswer, WRITE));
        assert!(may_retry(Failure::NoAnswer, CONDITIONAL));
        assert!(!may_retry(Failure::NoAnswer, NodeScoped));
    }

    #[test]
    fn refusals_are_final() {
        for code in [
            ErrorCode::ValidationFailed,
            ErrorCode::PreconditionFailed,
            ErrorCode::NotFound,
            ErrorCode::RevisionCompacted,
            ErrorCode::Internal,
            ErrorCode::Other("from_the_future".into()),
        ] {
            for call in [NodeScoped, Read, WRITE, CONDITIONAL] {
                assert!(!may_retry(api(&code), call), "{code} {call:?}");
            }
        }
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let p = RetryPolicy::default();
        assert_eq!(p.attempts(3), 9);
        assert_eq!(p.attempts(0), 1);
        assert_eq!(p.backoff(1), Duration::from_millis(100));
        assert_eq!(p.backoff(2), Duration::from_millis(200));
        assert_eq!(p.backoff(5), Duration::from_millis(1600));
        assert_eq!(p.backoff(6), Duration::from_secs(2));
        assert_eq!(p.backoff(600), Duration::from_secs(2));
    }
}
