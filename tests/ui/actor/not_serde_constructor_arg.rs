//! A constructor parameter that is neither `Clone` nor serde: one error, at its type.

pub struct Config;

#[rustyray::actor]
pub struct Counter {
    n: i64,
}

#[rustyray::actor]
impl Counter {
    pub fn new(_config: Config) -> Self {
        Counter { n: 0 }
    }

    pub fn get(&self) -> i64 {
        self.n
    }
}

fn main() {}
