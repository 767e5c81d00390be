fn main() {
    println!("haechi");
}
