// SPDX-License-Identifier: Apache-2.0
// Closes a connection whose client does not complete a request line within the timeout.

import DSnoTControlProtocol
import NIOCore

/// Arms a deadline when the connection opens and re-arms it after each newline seen; when it fires, the
/// client gets a `timeout` error line and the connection is closed. Removed when a `watch` stream starts.
final class RequestDeadlineHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let timeout: TimeAmount
    private var deadline: Scheduled<Void>?

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { arm(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        arm(context)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        if buffer.readableBytesView.contains(0x0A) { arm(context) }
        context.fireChannelRead(data)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
        context.fireChannelInactive()
    }

    private func arm(_ context: ChannelHandlerContext) {
        deadline?.cancel()
        let channel = context.channel
        let seconds = timeout.nanoseconds / 1_000_000_000
        deadline = context.eventLoop.scheduleTask(in: timeout) {
            let error = ControlError(code: .timeout, message: "no complete request line within \(seconds) s")
            if let line = try? WireCodec.encodeLine(ControlResponse.failure(error)) {
                var buffer = channel.allocator.buffer(capacity: line.count)
                buffer.writeBytes(line)
                channel.writeAndFlush(buffer).whenComplete { _ in channel.close(promise: nil) }
            } else {
                channel.close(promise: nil)
            }
        }
    }
}
