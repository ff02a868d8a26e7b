//! A one-person list as a key holder or a pseudonymous holder receives it
//! (`innsyn::blinded::InnsynSteps`, postcard), and `verify_steps` on it
//! against a fixed domain of three committed keys.
//!
//! Checked: decoding and verifying never panic; a decoded value survives
//! an encode/decode round trip; steps made without the key holders'
//! shares never verify (the fuzzer holds none of them).
#![no_main]

use kobling_protocol::{
    group::WirePoint,
    innsyn::{
        blinded::{verify_steps, InnsynSteps},
        wire::InnsynAction,
    },
    share::{Domain, Share},
    types::Name,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(steps) = postcard::from_bytes::<InnsynSteps>(data) else {
        return;
    };
    let again = postcard::to_allocvec(&steps).expect("encode");
    assert!(postcard::from_bytes::<InnsynSteps>(&again).as_ref() == Ok(&steps));
    let InnsynAction::Blinded { request, person } = &steps.call.call.action else {
        return;
    };
    let domain = Domain::Register(Name::new("RESEPT").expect("name"));
    let keys: Vec<(Name, Option<WirePoint>)> = ["NPR", "KPR", "LINKER"]
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let share = Share::derive(&[1; 32], &[i as u8 + 2; 32], &domain).expect("share");
            (Name::new(*m).expect("name"), Some(share.commitment()))
        })
        .collect();
    if !steps.steps.is_empty() {
        assert!(verify_steps(request, person, &keys, &steps.steps).is_err());
    }
});
