fn main() {
    println!("fixclf {}", env!("CARGO_PKG_VERSION"));
}
