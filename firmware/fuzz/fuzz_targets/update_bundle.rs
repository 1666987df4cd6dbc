//! Update bundles as they arrive from an administrator: whatever the bytes,
//! `open_update` must refuse them without panicking (nothing here carries a
//! valid signature by the test key below, so every input must be refused).
#![no_main]

use libfuzzer_sys::fuzz_target;

/// Public half of a throwaway update key made for this target; its secret
/// half was never kept.
const TEST_CERT: &str = "\
-----BEGIN PGP PUBLIC KEY BLOCK-----\n\
Comment: 9CF3 A1FE 4509 0791 5EF8  A5D5 E463 6B68 F1EC 36E4\n\
Comment: Coffer fuzz test key <fuzz@coffer.invalid>\n\
\n\
xjMEawli7BYJKwYBBAHaRw8BAQdAqsi67JpALHXWC1KT4K54roFB6WmLFfzPPXJC\n\
ZmVcMLTCwAsEHxYKAH0FgmsJYuwDCwkHCRDkY2to8ew25EcUAAAAAAAeACBzYWx0\n\
QG5vdGF0aW9ucy5zZXF1b2lhLXBncC5vcmdEu/Bz3O+giPJxgerfh1Rspfi6gB0m\n\
7FbBahCbAGYQjQMVCggCmwECHgkWIQSc86H+RQkHkV74pdXkY2to8ew25AAA8+kB\n\
AJuM+kktUVL29RHOUGmsRC9dKXqUQ6a7dL679YZJHOP3AP0Q0mJSkt81Wtkvnv60\n\
pexhROkE0T/PmRlNId/PBrbDA80qQ29mZmVyIGZ1enogdGVzdCBrZXkgPGZ1enpA\n\
Y29mZmVyLmludmFsaWQ+wsAOBBMWCgCABYJrCWLsAwsJBwkQ5GNraPHsNuRHFAAA\n\
AAAAHgAgc2FsdEBub3RhdGlvbnMuc2VxdW9pYS1wZ3Aub3JnR258FWcm+g8WqJg+\n\
LMHFXaVW3ki6FmYf9oMaibUcBEkDFQoIApkBApsBAh4JFiEEnPOh/kUJB5Fe+KXV\n\
5GNraPHsNuQAAEx6AQChLQlqtgDqp7W2qPxut3fMzCeiKOLaFwTy4DIzk2dC4QD+\n\
IW3J+YQe7pVehTQWS02WinBmKVUctIw/SueVjWW9kwjOMwRrCWLsFgkrBgEEAdpH\n\
DwEBB0BdS2Vy+z2k3M4fvyffqSTJDlxJhZKV84mSFo5d1oAFScLAvwQYFgoBMQWC\n\
awli7AkQ5GNraPHsNuRHFAAAAAAAHgAgc2FsdEBub3RhdGlvbnMuc2VxdW9pYS1w\n\
Z3Aub3JnDVT77MqOR0wypPsIW6stRL5goB7QhxTqEaMlfzjXKDECmwK+oAQZFgoA\n\
bwWCawli7AkQEmZgxbLlt+BHFAAAAAAAHgAgc2FsdEBub3RhdGlvbnMuc2VxdW9p\n\
YS1wZ3Aub3JnaLRbIW2It8/cKxSm8rDAdnuUDpZP32AtcNS+jsgopm4WIQSxjrtu\n\
ix00dRK8lIYSZmDFsuW34AAADbcBAK8l2E7GGlds8VUOO4srhL13aXYksYrBCY3s\n\
96X+Mnt8AP9JF7ouPjWFVL6IOwTJ1FkzHwU6qsfkq1PDD2bT9Yl/ABYhBJzzof5F\n\
CQeRXvil1eRja2jx7DbkAAAKhQEAtWc4+l2rr7Cfq2UpiH0zrRdCKYUolf+aMjYB\n\
/fgaK+gA/iGWUoug88satv9+r9Rt1CNE3DO686reR6EOOAE80HsG\n\
=YSd8\n\
-----END PGP PUBLIC KEY BLOCK-----\n";

fuzz_target!(|data: &[u8]| {
    match coffer_bundle::open_update(data, TEST_CERT) {
        Ok(_) => panic!("an unsigned input was accepted"),
        // Would mean the target tests nothing but certificate parsing.
        Err(coffer_bundle::BundleError::InvalidKey(e)) => panic!("test certificate: {e}"),
        Err(_) => {}
    }
});
