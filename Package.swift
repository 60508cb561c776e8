// swift-tools-version:6.1
// dsnot: training-free sparsification of LLM checkpoints (Wanda/SparseGPT/magnitude + DSnoT), as a daemon.

import PackageDescription

/// Settings every Swift target shares (STYLE.md 2.3).
let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

/// The numeric targets are optimised in debug builds too: `make test` builds one (debug) configuration,
/// and golden-vector and forward-pass tests at -Onone run 10-50x slower. Bounds checks stay on.
let numericSettings: [SwiftSetting] = strictSettings + [.unsafeFlags(["-O"], .when(configuration: .debug))]

let package = Package(
    name: "dsnot",
    products: [
        .library(name: "SafeTensors", targets: ["SafeTensors"]),
        .library(name: "DSnoTCore", targets: ["DSnoTCore"]),
        .executable(name: "dsnot-bench", targets: ["dsnot-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
    ],
    targets: [
        // System-library shims: module map + header only (see each folder's README).
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CLZ4", pkgConfig: "liblz4", providers: [.apt(["liblz4-dev"])]),
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd", providers: [.apt(["libsystemd-dev"])]),

        .target(
            name: "SafeTensors",
            dependencies: [.product(name: "SystemPackage", package: "swift-system")],
            swiftSettings: numericSettings
        ),
        .target(
            name: "DSnoTCore",
            dependencies: [
                "SafeTensors", "CBLAS",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: numericSettings
        ),
        .executableTarget(
            name: "dsnot-bench",
            dependencies: ["SafeTensors", "DSnoTCore"],
            swiftSettings: strictSettings
        ),

        .testTarget(
            name: "ShimTests",
            dependencies: ["CBLAS", "CLZ4", "CSystemd"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "SafeTensorsTests",
            dependencies: ["SafeTensors", .product(name: "PropertyBased", package: "swift-property-based")],
            resources: [.copy("Resources")],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "DSnoTCoreTests",
            dependencies: ["DSnoTCore", "SafeTensors"],
            resources: [.copy("Resources")],
            swiftSettings: strictSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
