//! The counting global allocator of the allocation tests (`zero_alloc.rs`,
//! `request_alloc.rs`): it counts the allocations made on the thread under
//! test while it is armed (each test runs on its own thread, so the
//! harness's allocations on other threads are not counted).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;
use std::task::Wake;

/// How many times [`allocations`] calls its function once armed.
pub(crate) const CALLS: usize = 100;

/// `System`, counting.
pub(crate) struct Counting;

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count_one() {
    // Const-initialized thread-locals without destructors never allocate.
    let _ = ARMED.try_with(|armed| {
        if armed.get() {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        }
    });
}

// SAFETY: every method forwards to `System` with the caller's own arguments,
// so the contract of `GlobalAlloc` holds exactly as it does for `System`;
// counting only touches thread-locals that never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: forwarded unchanged (see the impl).
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: forwarded unchanged (see the impl).
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged (see the impl).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: forwarded unchanged (see the impl).
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
pub(crate) static ALLOCATOR: Counting = Counting;

/// The allocations `f` makes on this thread, run [`CALLS`] times after a first
/// run that is not counted (what a thread sets up once, such as the context
/// stack of OpenTelemetry with the `opentelemetry` feature, is not the fast
/// path; anything that allocates on every call still counts [`CALLS`] times).
pub(crate) fn allocations(mut f: impl FnMut()) -> usize {
    f();
    ALLOCATIONS.with(|n| n.set(0));
    ARMED.with(|armed| armed.set(true));
    for _ in 0..CALLS {
        f();
    }
    ARMED.with(|armed| armed.set(false));
    ALLOCATIONS.with(Cell::get)
}

/// A waker that does nothing, to poll futures by hand.
pub(crate) struct Noop;

impl Wake for Noop {
    fn wake(self: Arc<Self>) {}
}
