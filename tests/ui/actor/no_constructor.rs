#[rustyray::actor]
pub struct Counter {
    n: i64,
}

#[rustyray::actor]
impl Counter {
    pub fn get(&self) -> i64 {
        self.n
    }
}

fn main() {}
