//! A valid WebAssembly component that exports `test:wrong/greeter` instead of
//! `scarab:plugin/validator`, for the host's tests: registering it must fail.

wit_bindgen::generate!({
    world: "wrong",
    path: "wit",
});

struct Greeter;

impl exports::test::wrong::greeter::Guest for Greeter {
    fn greet() -> String {
        "hello from the wrong world".to_owned()
    }
}

export!(Greeter);
