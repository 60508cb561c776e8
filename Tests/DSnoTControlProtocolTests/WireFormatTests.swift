// SPDX-License-Identifier: Apache-2.0
// The wire format is an interface: golden request lines, and every decoding failure mapped to its code.

import DSnoTControlProtocol
import Foundation
import Testing

@Suite struct WireFormatTests {
    // Golden lines: a change here breaks deployed clients, so it needs a protocol version bump.
    @Test(arguments: [
        (ControlCommand.status, #"{"command":"status","id":1,"version":1}"#),
        (
            .list(state: .failed, watch: "main", limit: 5),
            #"{"command":"list","id":1,"limit":5,"state":"failed","version":1,"watch":"main"}"#
        ),
        (.show(job: "j-1"), #"{"command":"show","id":1,"job":"j-1","version":1}"#),
        (
            .submit(path: "/m", overrides: ["sparsity": "0.6"], priority: 2),
            #"{"command":"submit","id":1,"overrides":{"sparsity":"0.6"},"path":"\/m","priority":2,"version":1}"#
        ),
        (.cancel(job: "j-1"), #"{"command":"cancel","id":1,"job":"j-1","version":1}"#),
        (.retry(job: "j-1"), #"{"command":"retry","id":1,"job":"j-1","version":1}"#),
        (.pause(watch: nil), #"{"command":"pause","id":1,"version":1}"#),
        (.resume(watch: "main"), #"{"command":"resume","id":1,"version":1,"watch":"main"}"#),
        (.reload, #"{"command":"reload","id":1,"version":1}"#),
        (.watch(job: nil), #"{"command":"watch","id":1,"version":1}"#),
    ])
    func requestEncodesToGoldenLineAndBack(_ command: ControlCommand, _ golden: String) throws {
        let line = try WireCodec.encodeLine(ControlRequest(command, id: 1))
        #expect(String(decoding: line, as: UTF8.self) == golden + "\n")
        let decoded = try WireCodec.decodeRequest(Data(golden.utf8))
        #expect(decoded == ControlRequest(command, id: 1))
    }

    @Test(arguments: [
        ("not json", ControlError.Code.malformedRequest),
        (#"[1,2]"#, .malformedRequest),
        (#"{"command":"status"}"#, .malformedRequest),
        (#"{"version":"1","command":"status"}"#, .malformedRequest),
        (#"{"version":1,"command":"explode"}"#, .unknownCommand),
        (#"{"version":2,"command":"status"}"#, .versionMismatch),
        (#"{"version":1,"command":"show"}"#, .malformedRequest),
        (#"{"version":1,"command":"list","state":"sleeping"}"#, .malformedRequest),
        (#"{"version":1,"command":"submit","path":7}"#, .malformedRequest),
    ])
    func badRequestsMapToStableCodes(_ line: String, _ code: ControlError.Code) {
        #expect(throws: ControlError.self) { try WireCodec.decodeRequest(Data(line.utf8)) }
        do {
            _ = try WireCodec.decodeRequest(Data(line.utf8))
        } catch {
            #expect(error.code == code, "\(line) → \(error)")
        }
    }

    @Test func unknownErrorCodesStillDecode() throws {
        // A newer daemon may send codes this client does not know; they must not break decoding.
        let line = #"{"error":{"code":"quota-exceeded","message":"m"},"ok":false,"version":1}"#
        let response = try WireCodec.makeDecoder().decode(ControlResponse.self, from: Data(line.utf8))
        #expect(response.error?.code.rawValue == "quota-exceeded")
        #expect(response.ok == false)
    }

    @Test func jobRecordUsesSnakeCaseWireNames() throws {
        var job = JobRecord(
            id: "j-1",
            key: "k",
            watch: "w",
            inputPath: "/in",
            outbox: "/out",
            recipe: "r",
            createdAt: Date(timeIntervalSince1970: 0)
        )
        job.blockCount = 22
        let json = String(decoding: try WireCodec.makeEncoder().encode(job), as: UTF8.self)
        #expect(json.contains(#""input_path":"\/in""#))
        #expect(json.contains(#""block_count":22"#))
        #expect(json.contains(#""created_at":"1970-01-01T00:00:00Z""#))
        let back = try WireCodec.makeDecoder().decode(JobRecord.self, from: Data(json.utf8))
        #expect(back == job)
    }

    @Test func mutatingCommandsAreExactlyTheWriteSet() {
        let mutating: [ControlCommand] = [
            .submit(path: "/", overrides: [:], priority: nil), .cancel(job: "j"), .retry(job: "j"), .pause(watch: nil),
            .resume(watch: nil), .reload,
        ]
        let reading: [ControlCommand] = [
            .status, .list(state: nil, watch: nil, limit: nil), .show(job: "j"), .watch(job: nil),
        ]
        #expect(mutating.allSatisfy { $0.isMutating })
        #expect(!reading.contains { $0.isMutating })
    }
}
