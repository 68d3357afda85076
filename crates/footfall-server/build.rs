// The web files are embedded with rust-embed; rebuild when any of them (or a new one) appears.
fn main() {
    println!("cargo:rerun-if-changed=../../web");
}
