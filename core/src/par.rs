//! A tiny parallel map for per-image work (reading release files, probing layers), which is
//! independent between images and dominated by system calls.

/// Below this many items the work stays on the calling thread.
const MIN_PARALLEL: usize = 16;

/// Apply `f` to every item, on up to as many threads as there are CPUs (at most 4), keeping
/// the order. The first error (in item order) is returned.
pub fn map<T: Send, U: Send, E: Send>(items: Vec<T>, f: impl Fn(T) -> Result<U, E> + Sync) -> Result<Vec<U>, E> {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(4);
    if threads < 2 || items.len() < MIN_PARALLEL {
        return items.into_iter().map(f).collect();
    }
    let per = items.len().div_ceil(threads);
    let mut chunks: Vec<Vec<T>> = Vec::new();
    let mut it = items.into_iter();
    loop {
        let c: Vec<T> = it.by_ref().take(per).collect();
        if c.is_empty() {
            break;
        }
        chunks.push(c);
    }
    let f = &f;
    let results: Vec<Result<Vec<U>, E>> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks.into_iter().map(|c| s.spawn(move || c.into_iter().map(f).collect::<Result<Vec<U>, E>>())).collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
    });
    let mut out = Vec::new();
    for r in results {
        out.extend(r?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_order_and_first_error() {
        let v: Vec<u32> = (0..100).collect();
        assert_eq!(super::map(v.clone(), |x| Ok::<_, ()>(x * 2)).unwrap(), v.iter().map(|x| x * 2).collect::<Vec<_>>());
        assert_eq!(super::map(v, |x| if x == 70 || x == 90 { Err(x) } else { Ok(x) }), Err(70));
    }
}
