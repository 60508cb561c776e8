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
        .library(name: "DSnoTControlProtocol", targets: ["DSnoTControlProtocol"]),
        .library(name: "DSnoTClient", targets: ["DSnoTClient"]),
        .library(name: "DSnoTDaemon", targets: ["DSnoTDaemon"]),
        .executable(name: "dsnotd", targets: ["dsnotd"]),
        .executable(name: "dsnotctl", targets: ["dsnotctl"]),
        .library(name: "SparseFormat", targets: ["SparseFormat"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
        // Daemon (issue 6).
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        // SHA-256 (manifests, recipe hashes, fingerprints, job ids), behind DSnoTSupport.
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        // The metrics endpoint (metrics_listen, dsnotd(8)).
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        // The fleet's shared job store (job_store = "postgresql", issue 15).
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
    ],
    targets: [
        // System-library shims: module map + header only (see each folder's README).
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CLZ4", pkgConfig: "liblz4", providers: [.apt(["liblz4-dev"])]),
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd", providers: [.apt(["libsystemd-dev"])]),
        // oneDNN (bf16 GEMM with fp32 accumulation, runtime-dispatched AVX-512 BF16 / AMX kernels); no .pc file.
        .systemLibrary(name: "CDNNL", providers: [.apt(["libdnnl-dev"])]),

        // Small helpers every layer shares: SHA-256 (swift-crypto), canonical JSON text.
        .target(
            name: "DSnoTSupport",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strictSettings
        ),
        .target(
            name: "SafeTensors",
            dependencies: [.product(name: "SystemPackage", package: "swift-system")],
            swiftSettings: numericSettings
        ),
        .target(
            name: "DSnoTCore",
            dependencies: [
                "SafeTensors", "DSnoTSupport", "CBLAS", "CDNNL",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: numericSettings
        ),
        // One pruning job end to end (calibrate, prune, evaluate, write): shared by dsnotctl and dsnotd.
        .target(
            name: "DSnoTPipeline",
            dependencies: [
                "DSnoTCore", "DSnoTSupport", "SafeTensors", "SparseFormat",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "dsnot-bench",
            dependencies: [
                "SafeTensors", "DSnoTCore", "SparseFormat", "DSnoTPipeline",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),

        // Daemon (issue 6): wire types, client, daemon library, the two executables.
        .target(name: "DSnoTControlProtocol", swiftSettings: strictSettings),
        .target(name: "DSnoTClient", dependencies: ["DSnoTControlProtocol"], swiftSettings: strictSettings),
        .target(
            name: "DSnoTDaemon",
            dependencies: [
                "DSnoTControlProtocol", "CSystemd", "SafeTensors", "DSnoTSupport", "DSnoTCore", "SparseFormat",
                "DSnoTPipeline",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "TOMLKit", package: "TOMLKit"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "dsnotd",
            dependencies: [
                "DSnoTDaemon",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "dsnotctl",
            dependencies: [
                "DSnoTClient", "DSnoTControlProtocol", "DSnoTCore", "SafeTensors", "SparseFormat", "DSnoTPipeline",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "SparseFormat",
            dependencies: [
                "SafeTensors", "DSnoTSupport", "CLZ4", .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: numericSettings
        ),

        // The helpers every test target shares (temporary directories, external programs): Foundation only.
        .target(name: "DSnoTTestSupport", path: "Tests/DSnoTTestSupport", swiftSettings: strictSettings),
        .testTarget(name: "DSnoTSupportTests", dependencies: ["DSnoTSupport"], swiftSettings: strictSettings),
        .testTarget(
            name: "ShimTests",
            dependencies: ["CBLAS", "CLZ4", "CSystemd", "DSnoTTestSupport"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "SafeTensorsTests",
            dependencies: [
                "SafeTensors", "DSnoTTestSupport", .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            resources: [.copy("Resources")],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "DSnoTCoreTests",
            dependencies: ["DSnoTCore", "DSnoTPipeline", "SafeTensors", "DSnoTTestSupport"],
            resources: [.copy("Resources")],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "DSnoTControlProtocolTests",
            dependencies: ["DSnoTControlProtocol"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "DSnoTDaemonTests",
            dependencies: [
                "DSnoTDaemon", "DSnoTClient", "DSnoTControlProtocol", "DSnoTPipeline", "DSnoTCore", "SafeTensors",
                "SparseFormat", "DSnoTTestSupport", "DSnoTSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ServiceLifecycleTestKit", package: "swift-service-lifecycle"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "dsnotctlTests",
            dependencies: [
                "dsnotctl", "DSnoTClient", "DSnoTControlProtocol", "SafeTensors", "DSnoTDaemon", "DSnoTPipeline",
                "DSnoTCore", "DSnoTTestSupport",
            ],
            swiftSettings: strictSettings
        ),
        // Deployment (issue 7): the shipped etc/dsnot/dsnotd.toml; scripts/test-deploy.sh checks the rest.
        .testTarget(
            name: "DeployTests",
            dependencies: ["DSnoTDaemon", "DSnoTPipeline", "DSnoTCore"],
            swiftSettings: strictSettings
        ),
        // dsnot-bench's own code (ForwardBenchmark, TensorOverlay), through `@testable import dsnot_bench`.
        .testTarget(
            name: "DSnoTBenchTests",
            dependencies: [
                "dsnot-bench", "DSnoTCore", "DSnoTPipeline", "SafeTensors", "DSnoTTestSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "DSnoTPipelineTests",
            dependencies: ["DSnoTPipeline", "DSnoTCore", "SafeTensors", "SparseFormat", "DSnoTTestSupport"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "SparseFormatTests",
            dependencies: ["SparseFormat", "SafeTensors", "DSnoTSupport", "DSnoTTestSupport"],
            swiftSettings: strictSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
