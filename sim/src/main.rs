//! `kobling-sim`: synthetic federations for Kobling.
#![forbid(unsafe_code)]

fn main() {
    eprintln!("kobling-sim: the demo command is not built yet (issue 4)");
    std::process::exit(2);
}
