//! Bench texts of a chosen size (`benches/engine.rs`, `benches/stream.rs`,
//! `examples/stream_cost.rs`).

/// About `n` bytes of `seed` repeated, cut on a char boundary.
pub fn text(seed: &str, n: usize) -> String {
    let mut s = String::new();
    while s.len() < n {
        s.push_str(seed);
    }
    let mut cut = n;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
    s
}
