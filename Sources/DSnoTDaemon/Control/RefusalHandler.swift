// SPDX-License-Identifier: Apache-2.0
// Answers a connection the daemon will not serve with one error line, then closes it.

import DSnoTControlProtocol
import NIOCore

/// Answers a refused connection with one error line (`busy`) as soon as it is active, then closes it.
final class RefusalHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let error: ControlError
    private var answered = false

    init(error: ControlError) {
        self.error = error
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { answer(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        answer(context)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // A refused client's request is not read.
    }

    private func answer(_ context: ChannelHandlerContext) {
        guard !answered else { return }
        answered = true
        Self.answerAndClose(context.channel, with: error)
    }

    /// Writes `error` as a response line, then closes `channel` whether or not the write succeeded.
    static func answerAndClose(_ channel: any Channel, with error: ControlError) {
        guard let line = try? WireCodec.encodeLine(ControlResponse.failure(error)) else {
            channel.close(promise: nil)
            return
        }
        var buffer = channel.allocator.buffer(capacity: line.count)
        buffer.writeBytes(line)
        channel.writeAndFlush(buffer).whenComplete { _ in channel.close(promise: nil) }
    }
}
