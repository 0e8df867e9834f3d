"""Class names of the layers Keras itself provides (tf_keras 2.x and Keras 3), read without TensorFlow.

A layer of any other class is a custom class: its code is not in the model file, but loading it
means finding and running code by that name, so it is refused unless the model is trusted.
Layers that wrap Python callables (`Lambda`, `TorchModuleWrapper`, `JaxLayer`, `FlaxLayer`) are not
listed; neither is `TFSMLayer` (it loads a SavedModel from a path named in the config).
`tests/test_keras_lambda.py` checks this list against the installed tf_keras and Keras 3.
"""

BUILTIN_LAYERS = frozenset({
    'Activation', 'ActivityRegularization', 'AdaptiveAveragePooling1D', 'AdaptiveAveragePooling2D',
    'AdaptiveAveragePooling3D', 'AdaptiveMaxPooling1D', 'AdaptiveMaxPooling2D', 'AdaptiveMaxPooling3D', 'Add',
    'AdditiveAttention', 'AlphaDropout', 'Attention', 'AugMix', 'AutoContrast', 'Average', 'AveragePooling1D',
    'AveragePooling2D', 'AveragePooling3D', 'AvgPool1D', 'AvgPool2D', 'AvgPool3D', 'BatchNormalization',
    'Bidirectional', 'CategoryEncoding', 'CenterCrop', 'Concatenate',
    'ContrastLimitedAdaptiveHistogramEqualization', 'Conv1D', 'Conv1DTranspose', 'Conv2D', 'Conv2DTranspose',
    'Conv3D', 'Conv3DTranspose', 'ConvLSTM1D', 'ConvLSTM2D', 'ConvLSTM3D', 'Convolution1D',
    'Convolution1DTranspose', 'Convolution2D', 'Convolution2DTranspose', 'Convolution3D',
    'Convolution3DTranspose', 'Cropping1D', 'Cropping2D', 'Cropping3D', 'CutMix', 'Dense', 'DenseFeatures',
    'DepthwiseConv1D', 'DepthwiseConv2D', 'Discretization', 'Dot', 'Dropout', 'ELU', 'EinsumDense', 'Embedding',
    'Equalization', 'Flatten', 'Functional', 'GRU', 'GRUCell', 'GaussianDropout', 'GaussianNoise',
    'GlobalAveragePooling1D', 'GlobalAveragePooling2D', 'GlobalAveragePooling3D', 'GlobalAvgPool1D',
    'GlobalAvgPool2D', 'GlobalAvgPool3D', 'GlobalMaxPool1D', 'GlobalMaxPool2D', 'GlobalMaxPool3D',
    'GlobalMaxPooling1D', 'GlobalMaxPooling2D', 'GlobalMaxPooling3D', 'GroupNormalization',
    'GroupQueryAttention', 'GroupedQueryAttention', 'HashedCrossing', 'Hashing', 'Identity', 'InputLayer',
    'IntegerLookup', 'LSTM', 'LSTMCell', 'LayerNormalization', 'LeakyReLU', 'LocallyConnected1D',
    'LocallyConnected2D', 'Masking', 'MaxNumBoundingBoxes', 'MaxPool1D', 'MaxPool2D', 'MaxPool3D',
    'MaxPooling1D', 'MaxPooling2D', 'MaxPooling3D', 'Maximum', 'MelSpectrogram', 'Minimum', 'MixUp', 'Model',
    'MultiHeadAttention', 'Multiply', 'Normalization', 'PReLU', 'Permute', 'Pipeline', 'RMSNormalization',
    'RNN', 'RandAugment', 'RandomBrightness', 'RandomColorDegeneration', 'RandomColorJitter', 'RandomContrast',
    'RandomCrop', 'RandomElasticTransform', 'RandomErasing', 'RandomFlip', 'RandomGaussianBlur',
    'RandomGrayscale', 'RandomHeight', 'RandomHue', 'RandomInvert', 'RandomPerspective', 'RandomPosterization',
    'RandomRotation', 'RandomSaturation', 'RandomSharpness', 'RandomShear', 'RandomTranslation', 'RandomWidth',
    'RandomZoom', 'ReLU', 'RepeatVector', 'Rescaling', 'Reshape', 'Resizing', 'ReversibleEmbedding',
    'STFTSpectrogram', 'SeparableConv1D', 'SeparableConv2D', 'SeparableConvolution1D', 'SeparableConvolution2D',
    'Sequential', 'SimpleRNN', 'SimpleRNNCell', 'SlicingOpLambda', 'Softmax', 'Solarization',
    'SpatialDropout1D', 'SpatialDropout2D', 'SpatialDropout3D', 'SpectralNormalization', 'StackedRNNCells',
    'StringLookup', 'Subtract', 'TFOpLambda', 'TextVectorization', 'ThresholdedReLU', 'TimeDistributed',
    'UnitNormalization', 'UpSampling1D', 'UpSampling2D', 'UpSampling3D', 'ZeroPadding1D', 'ZeroPadding2D',
    'ZeroPadding3D',
})
