"""seqgen.caffe's NetSpec against nets whose prototxt is written out by hand here: the
NetParameter NetSpec gives must equal the parsed prototxt (messages compared, not text),
with pycaffe's naming rules (attribute names, automatic `Type<k>` names, in-place layers,
`ntop`), parameter dicts, repeated fields, nested `*_param`s and enums."""
import numpy as np
import pytest
from google.protobuf import text_format

from seqgen.caffe import TEST, TRAIN, NetSpec, to_proto
from seqgen.caffe import layers as L
from seqgen.caffe import params as P
from seqgen.errors import SeqgenError
from seqgen.net import Net
from seqgen.proto import caffe_pb2


def parsed(text):
    return text_format.Parse(text, caffe_pb2.NetParameter())


def assert_same(got, text):
    want = parsed(text)
    assert got == want, text_format.MessageToString(got)


LSTM_NET = """
layer { name: "data" type: "Input" top: "data" top: "cont" top: "label"
        input_param { shape { dim: 4 dim: 2 dim: 1 } shape { dim: 4 dim: 2 }
                      shape { dim: 4 dim: 2 dim: 1 } } }
layer { name: "lstm1" type: "LSTM" bottom: "data" bottom: "cont" top: "lstm1"
        param { lr_mult: 1 } param { lr_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
        recurrent_param { num_output: 5 weight_filler { type: "uniform" min: -0.1 max: 0.1 }
                          bias_filler { type: "constant" value: 0 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "lstm1" top: "ip1"
        inner_product_param { num_output: 1 axis: 2
                              weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "ip1" bottom: "label" top: "loss"
        include { phase: TRAIN } }
"""


def lstm_spec():
    n = NetSpec()
    n.data, n.cont, n.label = L.Input(shape=[dict(dim=[4, 2, 1]), dict(dim=[4, 2]),
                                             dict(dim=[4, 2, 1])], ntop=3)
    n.lstm1 = L.LSTM(n.data, n.cont,
                     param=[dict(lr_mult=1), dict(lr_mult=1), dict(lr_mult=2, decay_mult=0)],
                     recurrent_param=dict(num_output=5,
                                          weight_filler=dict(type="uniform", min=-0.1, max=0.1),
                                          bias_filler=dict(type="constant", value=0)))
    n.ip1 = L.InnerProduct(n.lstm1, num_output=1, axis=2,
                           weight_filler=dict(type="gaussian", std=0.1))
    n.loss = L.EuclideanLoss(n.ip1, n.label, include=dict(phase=TRAIN))
    return n


def test_an_lstm_net_with_named_tops_nested_params_and_repeated_messages():
    n = lstm_spec()
    assert list(n.tops) == ["data", "cont", "label", "lstm1", "ip1", "loss"]
    assert n.keys() == list(n.tops) and n.vals()[3] is n.lstm1 and n["ip1"] is n.ip1
    assert_same(n.to_proto(), LSTM_NET)


def test_the_netspec_net_builds_and_runs_in_seqgen():
    net = Net(lstm_spec().to_proto(), TRAIN)
    assert net.params["lstm1"][0].data.shape == (20, 1)
    net.blobs["cont"].data[...] = 1
    net.blobs["cont"].data[0] = 0
    out = net.forward()
    assert np.isfinite(out["loss"]) and out["loss"] >= 0


def test_keywords_go_to_the_types_own_param_for_bvlc_rnn_and_the_fork_lstm():
    x, c = L.Input(shape=[dict(dim=[3, 1, 2]), dict(dim=[3, 1])], ntop=2)
    got = to_proto(L.RNN(x, c, num_output=4), L.Lstm(x, c, num_output=6,
                                                     clipping_threshold=0.1))
    assert_same(got, """
        layer { name: "Input1" type: "Input" top: "Input1" top: "Input2"
                input_param { shape { dim: 3 dim: 1 dim: 2 } shape { dim: 3 dim: 1 } } }
        layer { name: "RNN1" type: "RNN" bottom: "Input1" bottom: "Input2" top: "RNN1"
                recurrent_param { num_output: 4 } }
        layer { name: "Lstm1" type: "Lstm" bottom: "Input1" bottom: "Input2" top: "Lstm1"
                lstm_param { num_output: 6 clipping_threshold: 0.1 } }""")


def test_automatic_names_count_per_type_in_the_order_met():
    data = L.Input(shape=dict(dim=[2, 3]))
    ip = L.InnerProduct(L.InnerProduct(data, num_output=4), num_output=2)
    assert_same(ip.to_proto(), """
        layer { name: "Input1" type: "Input" top: "Input1"
                input_param { shape { dim: 2 dim: 3 } } }
        layer { name: "InnerProduct1" type: "InnerProduct" bottom: "Input1"
                top: "InnerProduct1" inner_product_param { num_output: 4 } }
        layer { name: "InnerProduct2" type: "InnerProduct" bottom: "InnerProduct1"
                top: "InnerProduct2" inner_product_param { num_output: 2 } }""")
    assert ip.to_proto() == to_proto(ip)


def test_in_place_layers_write_their_bottom_and_take_the_attributes_name():
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[2, 3]))
    n.ip1 = L.InnerProduct(n.data, num_output=3)
    n.relu1 = L.ReLU(n.ip1, in_place=True)
    # unnamed in-place layer: its name is made from its (unused) top, as in pycaffe
    n.out = L.TanH(L.Sigmoid(n.relu1, in_place=True))
    assert_same(n.to_proto(), """
        layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 } } }
        layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
                inner_product_param { num_output: 3 } }
        layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
        layer { name: "Sigmoid1" type: "Sigmoid" bottom: "ip1" top: "ip1" }
        layer { name: "out" type: "TanH" bottom: "ip1" top: "out" }""")


def test_enums_repeated_scalars_ntop_zero_and_layer_fields():
    n = NetSpec()
    n.a, n.b = L.Input(shape=[dict(dim=[2, 3]), dict(dim=[2, 3])], ntop=2)
    n.prod = L.Eltwise(n.a, n.b, operation=P.Eltwise.PROD)
    n.sum = L.Eltwise(n.a, n.b, operation="SUM", coeff=[1, -1], name="difference")
    n.s1, n.s2 = L.Slice(n.prod, slice_point=1, axis=1, ntop=2)
    n.silence = L.Silence(n.s1, n.s2, ntop=0)
    n.scaled = L.Scale(n.sum, bias_term=True, propagate_down=True, loss_weight=0.5,
                       include=[dict(phase=TEST, stage=["deploy"])])
    assert P.Eltwise.PROD == caffe_pb2.EltwiseParameter.PROD
    assert_same(n.to_proto(), """
        layer { name: "a" type: "Input" top: "a" top: "b"
                input_param { shape { dim: 2 dim: 3 } shape { dim: 2 dim: 3 } } }
        layer { name: "prod" type: "Eltwise" bottom: "a" bottom: "b" top: "prod"
                eltwise_param { operation: PROD } }
        layer { name: "difference" type: "Eltwise" bottom: "a" bottom: "b" top: "sum"
                eltwise_param { operation: SUM coeff: 1 coeff: -1 } }
        layer { name: "s1" type: "Slice" bottom: "prod" top: "s1" top: "s2"
                slice_param { slice_point: 1 axis: 1 } }
        layer { name: "silence" type: "Silence" bottom: "s1" bottom: "s2" }
        layer { name: "scaled" type: "Scale" bottom: "sum" top: "scaled"
                propagate_down: true loss_weight: 0.5
                include { phase: TEST stage: "deploy" } scale_param { bias_term: true } }""")


def test_a_layer_is_written_once_and_the_last_name_given_to_a_top_wins():
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 2]))
    n.first = L.TanH(n.data)
    n.second = n.first  # pycaffe names a top by the last attribute holding it
    n.both = L.Concat(n.first, n.second, axis=1)
    got = n.to_proto()
    assert [lp.name for lp in got.layer] == ["data", "second", "both"]
    assert list(got.layer[2].bottom) == ["second", "second"]


def test_mistakes_are_named():
    data = L.Input(shape=dict(dim=[1, 2]))
    with pytest.raises(SeqgenError, match="InnerProduct 'InnerProduct1'.*no field "
                                          "'num_outputs' in inner_product_param"):
        L.InnerProduct(data, num_outputs=3).to_proto()
    with pytest.raises(SeqgenError, match="ParamSpec has no field 'lr_mul'"):
        L.InnerProduct(data, num_output=3, param=dict(lr_mul=1)).to_proto()
    with pytest.raises(SeqgenError, match="no value 'PRODUCT'"):
        L.Eltwise(data, data, operation="PRODUCT").to_proto()
    with pytest.raises(TypeError, match="InnerProduct input 0 is not a Top"):
        L.InnerProduct("data", num_output=3)
    with pytest.raises(AttributeError, match="no top 'missing'"):
        _ = NetSpec().missing
    with pytest.raises(AttributeError):
        _ = P.NoSuchLayer.X
