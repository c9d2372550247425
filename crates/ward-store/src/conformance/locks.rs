//! Cases of the owned lock ([`Lease`]), on the store's compare-and-swap core.

use std::sync::Arc;

use crate::lock::Lease;
use crate::{Clock, ManualClock, SessionStore};

/// Lifetime of the locks of these cases (seconds).
const LOCK_TTL: u64 = 15;

async fn acquire<S: SessionStore>(store: &S, clock: &ManualClock) -> Option<Lease> {
    Lease::acquire(store, "l:a", LOCK_TTL, clock.now())
        .await
        .expect("acquire")
}

/// While one owner holds the lock, nobody else gets it; once released, the next caller does.
pub async fn lock_refuses_a_second_owner_while_held<S: SessionStore>(
    store: Arc<S>,
    clock: Arc<ManualClock>,
) {
    let first = acquire(&*store, &clock).await.expect("free lock taken");
    clock.advance(LOCK_TTL - 1);
    assert!(acquire(&*store, &clock).await.is_none(), "taken twice");
    assert!(first.release(&*store).await.expect("release"));
    assert!(
        acquire(&*store, &clock).await.is_some(),
        "released lock free"
    );
}

/// A holder whose lock expired and was taken by another cannot release (delete) the new
/// holder's lock, nor renew it; the new holder's release works.
pub async fn lock_release_by_a_non_owner_keeps_the_lock<S: SessionStore>(
    store: Arc<S>,
    clock: Arc<ManualClock>,
) {
    let mut slow = acquire(&*store, &clock).await.expect("free lock taken");
    clock.advance(LOCK_TTL);
    let next = acquire(&*store, &clock).await.expect("expired lock taken");
    let renewed = slow
        .renew(&*store, LOCK_TTL, clock.now())
        .await
        .expect("renew");
    assert!(!renewed, "a lost lock was renewed");
    assert!(!slow.release(&*store).await.expect("release"));
    assert!(
        acquire(&*store, &clock).await.is_none(),
        "the non-owner's release freed the lock"
    );
    assert!(next.release(&*store).await.expect("release"));
    assert!(acquire(&*store, &clock).await.is_some());
}

/// Renewal by the owner moves the expiry: a lock renewed in time outlives its first lifetime
/// for as long as it is renewed.
pub async fn lock_renewal_extends_it_past_its_first_expiry<S: SessionStore>(
    store: Arc<S>,
    clock: Arc<ManualClock>,
) {
    let mut held = acquire(&*store, &clock).await.expect("free lock taken");
    for _ in 0..4 {
        clock.advance(LOCK_TTL / 3);
        let renewed = held
            .renew(&*store, LOCK_TTL, clock.now())
            .await
            .expect("renew");
        assert!(renewed, "the owner could not renew");
        assert_eq!(held.expires_at(), clock.now() + LOCK_TTL);
    }
    clock.advance(LOCK_TTL - 1);
    assert!(
        acquire(&*store, &clock).await.is_none(),
        "renewed lock lost"
    );
    assert!(held.release(&*store).await.expect("release"));
}

/// A holder that died (never renews, never releases) blocks others only until the lock's
/// lifetime has passed.
pub async fn lock_of_a_dead_holder_frees_by_expiry<S: SessionStore>(
    store: Arc<S>,
    clock: Arc<ManualClock>,
) {
    let dead = acquire(&*store, &clock).await.expect("free lock taken");
    clock.advance(LOCK_TTL - 1);
    assert!(acquire(&*store, &clock).await.is_none());
    clock.advance(1);
    let next = acquire(&*store, &clock)
        .await
        .expect("dead holder's lock freed");
    drop(dead);
    assert!(next.release(&*store).await.expect("release"));
}
