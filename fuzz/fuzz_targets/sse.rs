//! Any bytes, fed to the SSE decoder whole and split at a fuzzer-chosen point: never a
//! panic, and the same events either way.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llm_core::sse::{Decoder, Event};

fn decode(pieces: &[&[u8]]) -> Vec<Result<Event, String>> {
    let mut decoder = Decoder::with_limit(4096);
    let mut events = Vec::new();
    for piece in pieces {
        decoder.feed(piece);
        loop {
            match decoder.next_event() {
                Ok(Some(event)) => events.push(Ok(event)),
                Ok(None) => break,
                Err(error) => {
                    events.push(Err(error.to_string()));
                    return events;
                }
            }
        }
    }
    match decoder.finish() {
        Ok(Some(event)) => events.push(Ok(event)),
        Ok(None) => {}
        Err(error) => events.push(Err(error.to_string())),
    }
    events
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, body)) = data.split_first() else {
        return;
    };
    let cut = usize::from(cut).min(body.len());
    let whole = decode(&[body]);
    let split = decode(&[&body[..cut], &body[cut..]]);
    // Errors (an oversized event) may surface at a different point; events before agree.
    let agreed = whole
        .iter()
        .zip(&split)
        .take_while(|(a, b)| a.is_ok() && b.is_ok());
    for (a, b) in agreed {
        assert_eq!(a, b);
    }
    if whole.iter().all(Result::is_ok) && split.iter().all(Result::is_ok) {
        assert_eq!(whole, split);
    }
});
