//! The process's file-descriptor limit, raised at start: every client connection, upstream
//! connection and store file takes a descriptor, and the soft limit a service starts with is
//! often a fraction (1024) of what the hard limit allows.

/// Linux refuses a soft limit above `fs.nr_open` (1 Mi by default) even when the hard limit is
/// "unlimited": the fallback target then.
const NR_OPEN_DEFAULT: u64 = 1 << 20;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, logs the limit in force, and warns when
/// `max_connections` would not fit in it. Never fails: Ward serves on the limit it has, and
/// the acceptor backs off when descriptors run out.
pub fn raise_descriptor_limit(max_connections: u32) {
    let raised = rlimit::increase_nofile_limit(u64::MAX)
        .or_else(|_| rlimit::increase_nofile_limit(NR_OPEN_DEFAULT));
    match raised {
        Ok(limit) => {
            tracing::info!(
                event = "descriptor_limit",
                limit,
                max_connections,
                "open file descriptor limit"
            );
            if u64::from(max_connections) > limit {
                tracing::warn!(
                    event = "descriptor_limit_low",
                    limit,
                    max_connections,
                    "server.max_connections exceeds the open file limit (upstream connections \
                     and the store need descriptors too): lower it or raise the hard limit"
                );
            }
        }
        Err(err) => tracing::warn!(
            event = "descriptor_limit_unknown",
            error = %err,
            "cannot read or raise the open file limit"
        ),
    }
}
