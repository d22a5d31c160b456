struct Counter {
    n: i64,
}

impl Counter {
    #[rustyray::remote]
    fn get(&self) -> i64 {
        self.n
    }
}

fn main() {}
