//! The generated `remote(..)` methods keep the parameter names of the
//! constructor and the methods, as rustc's note on a wrong call shows.

#[rustyray::actor]
pub struct Counter {
    n: i64,
}

#[rustyray::actor]
impl Counter {
    pub fn new(start: i64) -> Self {
        Counter { n: start }
    }

    pub fn incr(&mut self, by: i64) -> i64 {
        self.n += by;
        self.n
    }
}

fn main() {
    let counter = Counter::remote();
    let _ = counter.incr();
}
