#!/usr/bin/python3
"""Cross-language check: a Python client for the v2 protocol (inference.GRPCInferenceService).

Message classes come from `protoc --python_out` run on tensorgate's proto/inference/*.proto (by
test/v2-python.test.ts, into --stubs); the stubs are channel.unary_unary / stream_stream calls written here,
so only Debian's python3-grpcio, python3-protobuf and protobuf-compiler are needed (no grpc_tools).

Each check raises on a wrong answer; on success one JSON object goes to stdout with what the Node test
compares further. Exits 1 on a failed check, 2 on an unexpected gRPC error, 3 when a dependency is missing.
"""
import argparse
import json
import struct
import sys

DTYPES = {
    # datatype: (struct format, typed contents field or None, sample values)
    "BOOL": ("?", "bool_contents", [True, False, True, True, False, False]),
    "UINT8": ("B", "uint_contents", [0, 1, 127, 128, 254, 255]),
    "UINT16": ("H", "uint_contents", [0, 1, 255, 256, 65534, 65535]),
    "UINT32": ("I", "uint_contents", [0, 1, 65536, 2**31, 2**32 - 2, 2**32 - 1]),
    "UINT64": ("Q", "uint64_contents", [0, 1, 2**32, 2**53 + 1, 2**63, 2**64 - 1]),
    "INT8": ("b", "int_contents", [-128, -1, 0, 1, 126, 127]),
    "INT16": ("h", "int_contents", [-32768, -1, 0, 1, 32766, 32767]),
    "INT32": ("i", "int_contents", [-2**31, -1, 0, 1, 2**31 - 2, 2**31 - 1]),
    "INT64": ("q", "int64_contents", [-2**63, -1, 0, 2**53 + 1, 2**62, 2**63 - 1]),
    "FP16": ("e", None, [0.0, -1.5, 65504.0, 0.0009765625, -0.25, 3.140625]),
    "FP32": ("f", "fp32_contents", [0.0, -1.5, 3.4028234663852886e38, 1e-45, 0.1, -7.25]),
    "FP64": ("d", "fp64_contents", [0.0, -1.5, 1.7976931348623157e308, 5e-324, 0.1, -7.25]),
    "BYTES": (None, "bytes_contents", [b"", b"a", "h\u00e9llo".encode(), "\U0001F600".encode(), b"x" * 300, b"z"]),
}


class CheckFailed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise CheckFailed(message)


def raw_bytes(datatype, values):
    fmt = DTYPES[datatype][0]
    if fmt is None:  # BYTES: each element prefixed with its length, 4 bytes little-endian
        return b"".join(struct.pack("<I", len(v)) + v for v in values)
    return struct.pack("<%d%s" % (len(values), fmt), *values)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", required=True)
    parser.add_argument("--stubs", required=True, help="folder holding inference/grpc_service_pb2.py")
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args()
    try:
        import grpc
    except ImportError as err:
        sys.stderr.write(f"cannot import grpc ({err}); install python3-grpcio\n")
        sys.exit(3)
    sys.path.insert(0, args.stubs)
    try:
        from inference import grpc_service_pb2 as pb
    except ImportError as err:
        sys.stderr.write(f"cannot import the generated inference/grpc_service_pb2 ({err})\n")
        sys.exit(3)

    service = "/inference.GRPCInferenceService/"
    report = {}
    with grpc.insecure_channel(args.address) as channel:
        def unary(name, request_type, response_type):
            call = channel.unary_unary(service + name, request_serializer=request_type.SerializeToString, response_deserializer=response_type.FromString)
            return lambda request: call(request, timeout=args.timeout)

        infer = unary("ModelInfer", pb.ModelInferRequest, pb.ModelInferResponse)
        try:
            grpc.channel_ready_future(channel).result(timeout=args.timeout)
            check(unary("ServerLive", pb.ServerLiveRequest, pb.ServerLiveResponse)(pb.ServerLiveRequest()).live, "ServerLive")
            check(unary("ServerReady", pb.ServerReadyRequest, pb.ServerReadyResponse)(pb.ServerReadyRequest()).ready, "ServerReady")
            meta = unary("ServerMetadata", pb.ServerMetadataRequest, pb.ServerMetadataResponse)(pb.ServerMetadataRequest())
            report["server"] = {"name": meta.name, "extensions": list(meta.extensions)}

            # Every dtype through its identity model, raw and (where the protocol has a field) typed.
            for datatype, (fmt, field, values) in DTYPES.items():
                model = "identity_" + ("string" if datatype == "BYTES" else datatype.lower())
                tensor = pb.ModelInferRequest.InferInputTensor(name="x", datatype=datatype, shape=[2, 3])
                res = infer(pb.ModelInferRequest(model_name=model, id=datatype, inputs=[tensor], raw_input_contents=[raw_bytes(datatype, values)]))
                check(res.id == datatype and res.model_name == model, f"{model}: id/model echoed")
                out = res.outputs[0]
                check(out.datatype == datatype and list(out.shape) == [2, 3], f"{model}: output {out.datatype} {list(out.shape)}")
                check(res.raw_output_contents[0] == raw_bytes(datatype, values), f"{model}: raw output bytes")
                if field is None:
                    continue
                typed = pb.ModelInferRequest.InferInputTensor(name="x", datatype=datatype, shape=[2, 3])
                getattr(typed.contents, field).extend(values)
                request = pb.ModelInferRequest(model_name=model, inputs=[typed])
                request.parameters["binary_data_output"].bool_param = False
                res = infer(request)
                got = list(getattr(res.outputs[0].contents, field))
                want = [struct.unpack("<f", struct.pack("<f", v))[0] for v in values] if datatype == "FP32" else values
                check(got == want, f"{model}: typed output {got} != {want}")
                check(len(res.raw_output_contents) == 0, f"{model}: typed answer has no raw contents")
            report["dtypes"] = sorted(DTYPES)

            # Metadata, readiness, configuration.
            md = unary("ModelMetadata", pb.ModelMetadataRequest, pb.ModelMetadataResponse)(pb.ModelMetadataRequest(name="mlp"))
            report["metadata"] = {"name": md.name, "versions": list(md.versions), "platform": md.platform,
                                  "inputs": [[t.name, t.datatype, list(t.shape)] for t in md.inputs],
                                  "outputs": [[t.name, t.datatype, list(t.shape)] for t in md.outputs]}
            ready = unary("ModelReady", pb.ModelReadyRequest, pb.ModelReadyResponse)
            report["ready"] = [ready(pb.ModelReadyRequest(name="mlp")).ready, ready(pb.ModelReadyRequest(name="mlp", version="7")).ready]
            config = unary("ModelConfig", pb.ModelConfigRequest, pb.ModelConfigResponse)(pb.ModelConfigRequest(name="mlp")).config
            report["config"] = {"name": config.name, "platform": config.platform, "max_batch_size": config.max_batch_size,
                                "input": [[t.name, t.data_type, list(t.dims)] for t in config.input]}

            # Statistics count exactly the requests made.
            stats = unary("ModelStatistics", pb.ModelStatisticsRequest, pb.ModelStatisticsResponse)
            before = stats(pb.ModelStatisticsRequest(name="mlp")).model_stats[0].inference_stats
            mlp_input = pb.ModelInferRequest.InferInputTensor(name="input", datatype="FP32", shape=[1, 64])
            for i in range(5):
                infer(pb.ModelInferRequest(model_name="mlp", inputs=[mlp_input], raw_input_contents=[struct.pack("<64f", *([float(i)] * 64))]))
            after = stats(pb.ModelStatisticsRequest(name="mlp")).model_stats[0].inference_stats
            report["stats_success_delta"] = after.success.count - before.success.count

            # A stream with requests in flight, one of them failing: every request gets its answer.
            stream = channel.stream_stream(service + "ModelStreamInfer", request_serializer=pb.ModelInferRequest.SerializeToString,
                                           response_deserializer=pb.ModelStreamInferResponse.FromString)
            bad = pb.ModelInferRequest.InferInputTensor(name="input", datatype="FP32", shape=[1, 63])
            requests = [pb.ModelInferRequest(model_name="mlp", id=f"s{i}", inputs=[mlp_input], raw_input_contents=[struct.pack("<64f", *([0.5] * 64))]) for i in range(3)]
            requests.insert(1, pb.ModelInferRequest(model_name="mlp", id="bad", inputs=[bad], raw_input_contents=[b"\0" * 252]))
            answers = list(stream(iter(requests), timeout=args.timeout))
            report["stream"] = {"ids": sorted(a.infer_response.id for a in answers if not a.error_message),
                                "errors": [a.error_message for a in answers if a.error_message]}

            # Errors: the protocol's status codes.
            errors = {}
            for label, request in [
                ("unknown_model", pb.ModelInferRequest(model_name="nope", inputs=[mlp_input], raw_input_contents=[b"\0" * 256])),
                ("mixed_contents", pb.ModelInferRequest(model_name="mlp", inputs=[pb.ModelInferRequest.InferInputTensor(
                    name="input", datatype="FP32", shape=[1, 64], contents=pb.InferTensorContents(fp32_contents=[0.0] * 64))], raw_input_contents=[b"\0" * 256])),
            ]:
                try:
                    infer(request)
                    errors[label] = "OK"
                except grpc.RpcError as err:
                    errors[label] = [err.code().name, err.details()]
            report["errors"] = errors
        except grpc.FutureTimeoutError:
            sys.stderr.write(f"could not connect to {args.address}\n")
            sys.exit(2)
        except grpc.RpcError as err:
            sys.stderr.write(f"{err.code().name}: {err.details()}\n")
            sys.exit(2)
        except CheckFailed as err:
            sys.stderr.write(f"check failed: {err}\n")
            sys.exit(1)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
